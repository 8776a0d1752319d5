"""``vsync fsck --remote NAME`` on an encrypted remote (docs/format.md, "Checking an
encrypted remote"): real vsync subprocesses on a real encrypted path remote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import RemoteKind, Run
from test_crypt_remote import make_remote, make_work, stored, vs


def fsck_remote(work: Path, *extra: str) -> Run:
    return vs("fsck", "--remote", "origin", *extra, cwd=work, check=False)


def problems(out: Run) -> list[str]:
    return [line for line in out.stdout.splitlines() if not line.startswith("fsck: ")]


def test_a_clean_remote_passes(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    out = fsck_remote(a)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert re.fullmatch(
        r"fsck: checked 1 commit, 3 files, \d+ chunks? \(.*\): no problems\n", out.stdout
    ), out.stdout
    assert out.stderr == ""


def test_a_flipped_byte_in_a_pack_is_reported(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    pack = stored(remote, "packs")[0]
    data = bytearray(pack.read_bytes())
    data[200] ^= 0x40  # inside the first record
    pack.write_bytes(bytes(data))
    out = fsck_remote(a)
    assert out.returncode == 3, (out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    assert re.fullmatch(
        rf"packs/{pack.name}: damaged: the encrypted remote's object packs/{pack.name} "
        r"\(record \d+\) failed authentication \(changed, swapped or from another repository\)",
        lines[0],
    ), lines
    # its chunks are not held whole: each one the history names is reported too
    assert lines[-1] == f"fsck: {len(lines) - 1} problems found", lines
    assert all(line.startswith("chunk ") for line in lines[1:-1]) and len(lines) > 2


@pytest.mark.parametrize("folder", ["packs", "index", "git"])
def test_a_deleted_object_is_reported(tmp_path: Path, folder: str) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    victim = stored(remote, folder)[0]
    victim.unlink()
    out = fsck_remote(a)
    assert out.returncode == 3, (out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"fsck: \d+ problems? found", lines[-1]), lines
    found = lines[:-1]
    if folder == "packs":
        assert re.fullmatch(
            rf"packs/{victim.name}: missing \(its index names \d+ chunks?\)", found[0]
        ), found
        assert any(line.startswith("chunk ") for line in found), found
    elif folder == "index":
        assert f"fsck: packs/{victim.name} has no index" in out.stderr
        assert found and all(re.fullmatch(r"chunk [0-9a-f]{64}: missing .*", x) for x in found)
    else:
        # the local repository holds that history: the walk reads it there
        assert found == [f"git/{victim.name}: missing (named by refs/main)"], found


def test_a_damaged_branch_record_is_reported(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    ref = remote / "refs" / "main"
    data = bytearray(ref.read_bytes())
    data[30] ^= 1
    ref.write_bytes(bytes(data))
    out = fsck_remote(a)
    assert out.returncode == 3
    assert problems(out)[0].startswith("refs/main: the encrypted remote's object refs/main failed")


def test_fsck_remote_of_a_plain_remote_is_bad_usage(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    vs("init", "--bare", plain, cwd=tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    vs("init", cwd=work)
    vs("remote", "add", "origin", plain, cwd=work)
    out = fsck_remote(work)
    assert out.returncode == 2 and "not an encrypted remote" in out.stderr


def test_history_only_the_remote_holds_is_walked_in_its_git_packs(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    vs("init", cwd=fresh)
    vs("remote", "add", "origin", remote, cwd=fresh)
    out = fsck_remote(fresh)
    assert out.returncode == 0 and "fsck: checked 1 commit, 3 files" in out.stdout, out.stdout
    git = stored(remote, "git")[0]
    data = bytearray(git.read_bytes())
    data[40] ^= 1
    git.write_bytes(bytes(data))
    lines = fsck_remote(fresh).stdout.splitlines()
    assert lines[0].startswith(f"git/{git.name}: damaged: "), lines
    assert re.fullmatch(r"commit [0-9a-f]{40}: missing from the remote's git packs", lines[1])
    assert lines[2:] == ["fsck: 2 problems found"], lines


def test_fsck_of_an_encrypted_ssh_remote(tmp_path: Path, sshd_server: object) -> None:
    ssh = RemoteKind("ssh", sshd_server)
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    vs("remote", "add", "over-ssh", ssh.url(remote), *ssh.cmd(), cwd=a)
    out = vs("fsck", "--remote", "over-ssh", cwd=a, env=ssh.env, check=False)
    assert out.returncode == 0 and out.stdout.endswith("no problems\n"), (out.stdout, out.stderr)
    index = stored(remote, "index")[0]
    index.unlink()
    out = vs("fsck", "--remote", "over-ssh", cwd=a, env=ssh.env, check=False)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert f"fsck: packs/{index.name} has no index" in out.stderr


def test_full_packs_are_padded_to_4_kib_and_the_last_with_padme(tmp_path: Path) -> None:
    """A pack closed because it was full says only how full it is, so it is padded
    to 4 KiB (not Padmé's up to 3 % at 16 MiB); the push's last pack keeps Padmé.
    fsck --remote takes both, and refuses a pack that ends anywhere else."""
    import random

    from vsync.sync.crypt.keys import full_pack_padded, padded

    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    (a / "big.bin").write_bytes(random.Random(11).randbytes(20 << 20))  # more than one pack
    vs("commit", "-q", "-m", "big", cwd=a)
    vs("push", cwd=a)
    sizes = sorted((p.stat().st_size, p) for p in stored(remote, "packs"))
    full = [p for size, p in sizes if size > 15 << 20]  # one more chunk would pass 16 MiB
    assert len(full) == 1 and len(sizes) >= 2, sizes
    (pack,) = full
    size = pack.stat().st_size
    assert size % 4096 == 0 and size != padded(size - 4095), size  # not Padmé's rounding
    end = len(pack.read_bytes().rstrip(b"\0"))  # the records end at a tag: not a zero byte
    assert size == full_pack_padded(end) < padded(end), (size, end)
    out = fsck_remote(a)
    assert out.returncode == 0, (out.stdout, out.stderr)

    with open(pack, "ab") as f:
        f.write(b"\0")
    out = fsck_remote(a)
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert problems(out)[0] == (
        f"packs/{pack.name}: damaged: the encrypted remote's object packs/{pack.name} "
        "failed authentication (it does not end at its padded length)"
    ), out.stdout
