"""Encrypted path remotes end to end (docs/format.md, "Encrypted remotes";
docs/security.md, "Encrypted remotes"): real vsync subprocesses, real folders."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from conftest import RemoteKind, Run, run_vsync, snapshot_tree

PASS = {"VSYNC_PASSWORD": "correct horse battery staple"}
FILE_NAME = "quarterly-plan-zebra.txt"
CONTENT = "the launch code is walrus-4417"
MESSAGE = "plan for the heron project"


def vs(*args: str | Path, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> Run:
    return run_vsync(*args, cwd=cwd, check=check, env={**PASS, **(env or {})})


def make_remote(tmp_path: Path, name: str = "remote") -> Path:
    vs("init", "--bare", "--encrypted", "--scrypt-log2n", "10", name, cwd=tmp_path)
    return tmp_path / name


def make_work(tmp_path: Path, remote: Path, name: str = "a") -> Path:
    work = tmp_path / name
    work.mkdir()
    vs("init", cwd=work)
    (work / FILE_NAME).write_text(CONTENT + "\n")
    (work / "media").mkdir()
    (work / "media" / "clip.bin").write_bytes(random.Random(7).randbytes(2 << 20))
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    os.symlink(FILE_NAME, work / "link")
    vs("commit", "-q", "-m", MESSAGE, cwd=work)
    vs("remote", "add", "origin", remote, cwd=work)
    vs("push", cwd=work)
    return work


def one_error_line(out: Run, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsync: error:"), out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def stored(remote: Path, folder: str) -> list[Path]:
    return sorted(p for p in (remote / folder).iterdir() if not p.name.startswith("."))


def test_round_trip_through_an_encrypted_path_remote(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    vs("clone", remote, "b", cwd=tmp_path)
    b = tmp_path / "b"
    assert snapshot_tree(b) == snapshot_tree(a)
    assert vs("log", cwd=b).stdout == vs("log", cwd=a).stdout
    (a / FILE_NAME).write_text("changed\n")
    vs("commit", "-q", "-m", "second", cwd=a)
    vs("push", cwd=a)
    vs("pull", cwd=b)
    assert snapshot_tree(b) == snapshot_tree(a)
    assert vs("log", cwd=b).stdout == vs("log", cwd=a).stdout


def test_a_chunk_the_remote_holds_is_not_sent_again(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    # a new file (a manifest the remote has not seen) whose chunks it mostly holds
    (a / "longer.bin").write_bytes((a / "media" / "clip.bin").read_bytes() + b"a new tail")
    vs("commit", "-q", "-m", "a longer copy", cwd=a)
    fields = dict(
        line.split("=", 1) for line in vs("push", "--porcelain", cwd=a).stdout.splitlines()
    )
    assert 1 <= int(fields["chunks"]) <= 2, fields
    assert len(stored(remote, "packs")) == 2


def test_nothing_stored_shows_names_messages_or_content(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    (a / "notes").mkdir()
    (a / "notes" / "second-secret-name.md").write_text(CONTENT * 50)
    vs("commit", "-q", "-m", MESSAGE + " two", cwd=a)
    vs("push", cwd=a)
    needles = [FILE_NAME, CONTENT, MESSAGE, "second-secret-name", "media", "Test Author"]
    seen = 0
    for path in remote.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            seen += len(data)
            for needle in needles:
                assert needle.encode() not in data, (needle, path)
                assert needle.encode("utf-16-le") not in data, (needle, path)
    assert seen > 2 << 20  # the content is there, sealed


def test_a_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    out = vs("clone", remote, "b", cwd=tmp_path, check=False, env={"VSYNC_PASSWORD": "wrong"})
    one_error_line(out, 2, "passphrase opens none")
    assert not (tmp_path / "b").exists()
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    vs("clone", "--password-file", pw, remote, "b", cwd=tmp_path, env={"VSYNC_PASSWORD": "x"})


@pytest.mark.parametrize("folder", ["git", "packs", "index", "refs"])
def test_a_flipped_byte_is_refused(tmp_path: Path, folder: str) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    victim = stored(remote, folder)[0]
    data = bytearray(victim.read_bytes())
    data[40] ^= 1  # inside the sealed part (a pack's first record, past its nonce)
    victim.write_bytes(bytes(data))
    out = vs("clone", remote, "b", cwd=tmp_path, check=False)
    one_error_line(out, 3, "failed authentication")


def test_swapped_objects_are_refused(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    (a / "more.bin").write_bytes(random.Random(8).randbytes(1 << 20))
    vs("commit", "-q", "-m", "more", cwd=a)
    vs("push", cwd=a)
    for folder in ("git", "packs"):
        first, second = stored(remote, folder)
        one, two = first.read_bytes(), second.read_bytes()
        first.write_bytes(two)
        second.write_bytes(one)
        out = vs("clone", remote, f"b-{folder}", cwd=tmp_path, check=False)
        one_error_line(out, 3, "failed authentication")
        first.write_bytes(one)
        second.write_bytes(two)
    vs("clone", remote, "b", cwd=tmp_path)


def test_a_rolled_back_branch_is_refused(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    vs("clone", remote, "b", cwd=tmp_path)
    old = (remote / "refs" / "main").read_bytes()
    (a / FILE_NAME).write_text("newer\n")
    vs("commit", "-q", "-m", "newer", cwd=a)
    vs("push", cwd=a)
    vs("fetch", cwd=tmp_path / "b")
    (remote / "refs" / "main").write_bytes(old)  # the storage serves the older record
    for who in (tmp_path / "b", a):
        out = vs("fetch", cwd=who, check=False)
        one_error_line(out, 3, "rolled back")
    out = vs("push", cwd=a, check=False)
    one_error_line(out, 3, "rolled back")


def test_an_object_from_another_repository_is_refused(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    other = make_remote(tmp_path, "other")
    make_work(tmp_path, other, "c")  # same passphrase, same files
    vs("clone", remote, "b", cwd=tmp_path)
    shutil.copy(other / "refs" / "main", remote / "refs" / "main")
    out = vs("fetch", cwd=tmp_path / "b", check=False)
    one_error_line(out, 3, "failed authentication")
    # the whole remote replaced by another repository under the same passphrase
    shutil.rmtree(remote)
    shutil.copytree(other, remote)
    out = vs("fetch", cwd=tmp_path / "b", check=False)
    one_error_line(out, 3, "not ")


def test_two_clients_converge_with_a_merge(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    vs("clone", remote, "b", cwd=tmp_path)
    b = tmp_path / "b"
    (a / "from-a.txt").write_text("a\n")
    vs("commit", "-q", "-m", "a", cwd=a)
    vs("push", cwd=a)
    (b / "from-b.txt").write_text("b\n")
    vs("commit", "-q", "-m", "b", cwd=b)
    out = vs("push", cwd=b, check=False)
    one_error_line(out, 1, "pull first")
    vs("sync", cwd=b)
    vs("pull", cwd=a)
    assert snapshot_tree(a) == snapshot_tree(b)
    assert (a / "from-b.txt").read_text() == "b\n"
    assert (b / "from-a.txt").read_text() == "a\n"


@pytest.mark.parametrize(
    "point",
    [
        "objstore-before-link",
        "encrypted-push-before-index",
        "encrypted-push-git-pack-stored",
        "encrypted-push-before-branch",
        "objstore-before-swap",
    ],
)
def test_a_push_killed_at_any_step_leaves_the_remote_whole(tmp_path: Path, point: str) -> None:
    remote = make_remote(tmp_path)
    a = make_work(tmp_path, remote)
    before = snapshot_tree(a)
    (a / "new.bin").write_bytes(random.Random(9).randbytes(1 << 20))
    vs("commit", "-q", "-m", "new", cwd=a)
    out = vs("push", cwd=a, check=False, env={"VSYNC_FAULTS": f"push/{point}=kill"})
    assert out.returncode == -9, (out.returncode, out.stderr)
    vs("clone", remote, "old", cwd=tmp_path)
    assert snapshot_tree(tmp_path / "old") == before
    vs("push", cwd=a)
    vs("pull", cwd=tmp_path / "old")
    assert snapshot_tree(tmp_path / "old") == snapshot_tree(a)


def test_no_passphrase_and_no_terminal_is_one_line(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    make_work(tmp_path, remote)
    assert "VSYNC_PASSWORD" not in os.environ  # run_vsync passes the test's environment on
    out = run_vsync("clone", remote, "b", cwd=tmp_path, check=False, input=b"")  # no terminal
    one_error_line(out, 2, "needs a passphrase")
    out = vs("init", "--encrypted", "x", cwd=tmp_path, check=False)
    one_error_line(out, 2, "--bare --encrypted")


def test_round_trip_through_an_encrypted_ssh_remote(tmp_path: Path, sshd_server: object) -> None:
    """Over the real sshd: ``vsync serve`` is the object store and holds no key."""
    ssh = RemoteKind("ssh", sshd_server)
    remote = make_remote(tmp_path)
    url = ssh.url(remote)
    env = {**PASS, **(ssh.env or {})}
    a = tmp_path / "a"
    a.mkdir()
    vs("init", cwd=a)
    (a / FILE_NAME).write_text(CONTENT + "\n")
    (a / "clip.bin").write_bytes(random.Random(3).randbytes(1 << 20))
    vs("commit", "-q", "-m", MESSAGE, cwd=a)
    vs("remote", "add", "origin", url, *ssh.cmd(), cwd=a)
    vs("push", cwd=a, env=env)
    vs("clone", *ssh.cmd(), url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    (a / FILE_NAME).write_text("over ssh\n")
    vs("commit", "-q", "-m", "two", cwd=a)
    vs("push", cwd=a, env=env)
    vs("pull", *ssh.cmd(), cwd=tmp_path / "b", env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    # the path remote and the SSH remote are the same bytes: a path clone agrees
    vs("clone", remote, "c", cwd=tmp_path)
    assert snapshot_tree(tmp_path / "c") == snapshot_tree(a)
