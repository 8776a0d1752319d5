"""``vsync init --bare --encrypted PATH|URL``: over the real sshd through ``vsync serve``
as the object store, and killed half-way (docs/protocol.md, "Object store")."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import RemoteKind, snapshot_tree
from test_crypt_remote import CONTENT, FILE_NAME, PASS, one_error_line, vs


def test_init_an_encrypted_remote_over_ssh(tmp_path: Path, sshd_server: object) -> None:
    ssh = RemoteKind("ssh", sshd_server)
    remote = tmp_path / "srv" / "enc"
    url = ssh.url(remote)
    env = {**PASS, **(ssh.env or {})}
    out = vs(
        "init",
        "--bare",
        "--encrypted",
        "--scrypt-log2n",
        "10",
        *ssh.cmd(),
        url,
        cwd=tmp_path,
        env=env,
    )
    assert out.stdout == f"Initialised empty encrypted vsync remote in {url}\n"
    assert (remote / "vsync-remote").is_file()
    [key] = (remote / "keys").iterdir()
    assert len(key.read_bytes()) == 108 and PASS["VSYNC_PASSWORD"].encode() not in key.read_bytes()
    assert not (tmp_path / "srv" / "enc.init-tmp").exists()
    a = tmp_path / "a"
    a.mkdir()
    vs("init", cwd=a)
    (a / FILE_NAME).write_text(CONTENT + "\n")
    (a / "clip.bin").write_bytes(random.Random(5).randbytes(1 << 20))
    vs("commit", "-q", "-m", "one", cwd=a)
    vs("remote", "add", "origin", url, *ssh.cmd(), cwd=a)
    vs("push", cwd=a, env=env)
    vs("clone", *ssh.cmd(), url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    vs("clone", remote, "c", cwd=tmp_path)  # the same bytes through the path
    assert snapshot_tree(tmp_path / "c") == snapshot_tree(a)
    # a second init over it is refused, and changes nothing
    out = vs(
        "init",
        "--bare",
        "--encrypted",
        "--scrypt-log2n",
        "10",
        *ssh.cmd(),
        url,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    one_error_line(out, 1, "already exists")
    assert [p.name for p in (remote / "keys").iterdir()] == [key.name]
    # a plain path already holding something is refused too
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    out = vs(
        "init",
        "--bare",
        "--encrypted",
        *ssh.cmd(),
        ssh.url(tmp_path / "full"),
        cwd=tmp_path,
        env=env,
        check=False,
    )
    one_error_line(out, 1, "already exists")


def test_the_server_refuses_a_bad_key_file_in_hello(tmp_path: Path) -> None:
    from vsync.sync.objstore.served import ServedStore
    from vsync.sync.protocol import RemoteError
    from vsync.sync.url import parse_url

    bad = [("keys/abc", bytes(108)), ("refs/main", bytes(108)), ("keys/00112233445566ff", b"x")]
    for name, data in bad:
        with pytest.raises(RemoteError, match="bad key"):
            ServedStore.open(parse_url(str(tmp_path / "r")), create=(name, data))
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("point", ["objstore-before-link", "objstore-created"])
def test_an_init_killed_half_way_leaves_no_remote(tmp_path: Path, point: str) -> None:
    out = vs(
        "init",
        "--bare",
        "--encrypted",
        "--scrypt-log2n",
        "10",
        "r",
        cwd=tmp_path,
        check=False,
        env={"VSYNC_FAULTS": f"init/{point}=kill"},
    )
    assert out.returncode == -9, (out.returncode, out.stderr)
    assert not (tmp_path / "r").exists()
    vs("init", "--bare", "--encrypted", "--scrypt-log2n", "10", "r", cwd=tmp_path)
    assert (tmp_path / "r" / "vsync-remote").is_file()
    assert not (tmp_path / "r.init-tmp").exists()
