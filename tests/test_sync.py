"""push, fetch, pull, clone and sync end to end: every test runs over a real
OpenSSH sshd on 127.0.0.1 and over a path remote."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import RemoteKind, Run, run_vsync, snapshot_tree, wait_for_serve_exit

from vsync.store import faults


def porcelain(out: Run) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def make_files(root: Path) -> None:
    (root / "notes.txt").write_text("line one\nline two\n")
    (root / "photos").mkdir()
    (root / "photos" / "img.raw").write_bytes(random.Random(1).randbytes(3 << 20))
    (root / "bin").mkdir()
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "run.sh").chmod(0o755)
    os.symlink("notes.txt", root / "link")
    (root / "empty").write_bytes(b"")


def init_with_files(root: Path) -> None:
    root.mkdir()
    run_vsync("init", cwd=root)
    make_files(root)
    run_vsync("commit", "-m", "first", cwd=root)


def fsck_clean(path: Path) -> None:
    out = run_vsync("fsck", cwd=path, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def head_of(path: Path) -> str:
    out = run_vsync("log", "--oneline", "-n", "1", cwd=path)
    return out.stdout.split()[0] if out.stdout else ""


def test_clone_edit_push_pull_round_trip(remote: RemoteKind, tmp_path: Path) -> None:
    laptop = tmp_path / "laptop"
    init_with_files(laptop)
    server = tmp_path / "server.vsync"
    remote.run("remote", "add", "origin", remote.url(server), *remote.cmd(), cwd=laptop)
    remote.run("push", "--create", cwd=laptop)
    assert (server / "config").is_file()
    desktop = tmp_path / "desktop"
    remote.run("clone", remote.url(server), desktop, *remote.cmd(), cwd=tmp_path)
    assert snapshot_tree(desktop) == snapshot_tree(laptop)
    assert run_vsync("status", "--porcelain", cwd=desktop).stdout == ""

    (desktop / "notes.txt").write_text("line one\nchanged on desktop\n")
    (desktop / "empty").unlink()
    (desktop / "photos" / "new.bin").write_bytes(os.urandom(200_000))
    (desktop / "bin" / "run.sh").chmod(0o644)
    run_vsync("commit", "-m", "desktop edits", cwd=desktop)
    remote.run("push", cwd=desktop)
    out = remote.run("pull", cwd=laptop)
    assert "Fast-forward" in out.stdout
    assert snapshot_tree(desktop) == snapshot_tree(laptop)
    assert head_of(laptop) == head_of(desktop)
    for path in (laptop, desktop, server):
        fsck_clean(path)


def test_fetch_leaves_the_folder_alone(remote: RemoteKind, tmp_path: Path) -> None:
    a = tmp_path / "a"
    init_with_files(a)
    b = tmp_path / "b"
    remote.run("clone", remote.url(a), b, *remote.cmd(), cwd=tmp_path)
    (a / "notes.txt").write_text("new text\n")
    run_vsync("commit", "-m", "second", cwd=a)
    before = snapshot_tree(b)
    out = remote.run("fetch", "--porcelain", cwd=b)
    assert porcelain(out)["objects"] != "0"
    assert snapshot_tree(b) == before
    assert run_vsync("show", "origin/main:notes.txt", cwd=b).stdout == "new text\n"
    remote.run("pull", cwd=b)
    assert (b / "notes.txt").read_text() == "new text\n"


def test_push_into_a_working_folder(remote: RemoteKind, tmp_path: Path) -> None:
    """Peer to peer: a clean working folder follows a push; a dirty one refuses it."""
    a = tmp_path / "a"
    init_with_files(a)
    b = tmp_path / "b"
    remote.run("clone", remote.url(a), b, *remote.cmd(), cwd=tmp_path)
    (b / "notes.txt").write_text("from b\n")
    run_vsync("commit", "-m", "b edit", cwd=b)
    remote.run("push", cwd=b)
    assert (a / "notes.txt").read_text() == "from b\n"
    assert run_vsync("status", "--porcelain", cwd=a).stdout == ""

    (a / "photos" / "img.raw").write_bytes(b"uncommitted edit on a")
    (b / "notes.txt").write_text("again from b\n")
    run_vsync("commit", "-m", "b edit 2", cwd=b)
    out = remote.run("push", cwd=b, check=False)
    assert out.returncode == 1
    assert "uncommitted changes" in out.stderr
    assert (a / "photos" / "img.raw").read_bytes() == b"uncommitted edit on a"
    assert (a / "notes.txt").read_text() == "from b\n"


def test_push_rejected_when_remote_is_ahead(remote: RemoteKind, tmp_path: Path) -> None:
    a = tmp_path / "a"
    init_with_files(a)
    server = tmp_path / "server"
    remote.run("push", "--create", remote.url(server), *remote.cmd(), cwd=a)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    (b / "notes.txt").write_text("b\n")
    run_vsync("commit", "-m", "b", cwd=b)
    remote.run("push", cwd=b)
    (a / "notes.txt").write_text("a\n")
    run_vsync("commit", "-m", "a", cwd=a)
    server_head = head_of(server)
    out = remote.run("push", remote.url(server), *remote.cmd(), cwd=a, check=False)
    assert out.returncode == 1
    assert "remote has commits you do not have; pull first" in out.stderr
    assert out.stderr.count("\n") == 1
    assert head_of(server) == server_head
    # pulling now merges: both edited notes.txt, so it stops on a conflict (exit 1)
    out = remote.run("pull", remote.url(server), *remote.cmd(), cwd=a, check=False)
    assert out.returncode == 1 and "1 conflict to resolve" in out.stderr
    assert "UU notes.txt" in out.stdout


def big_file(path: Path, size: int, seed: int = 7) -> None:
    """Incompressible, never-repeating bytes (repeated blocks would dedup away)."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // (4 << 20)):
            f.write(rng.randbytes(4 << 20))


def insert_middle(path: Path, data: bytes) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        tail = f.read()
        f.seek(size // 2)
        f.write(data + tail)


@pytest.mark.slow
def test_large_file_incremental_push(remote: RemoteKind, tmp_path: Path) -> None:
    size = 300 << 20
    a = tmp_path / "a"
    a.mkdir()
    run_vsync("init", cwd=a)
    big_file(a / "video.raw", size)
    run_vsync("commit", "-m", "video", cwd=a)
    server = tmp_path / "server"
    first = porcelain(
        remote.run("push", "--create", "--porcelain", remote.url(server), *remote.cmd(), cwd=a)
    )
    assert int(first["chunk_bytes"]) >= size * 0.99
    insert_middle(a / "video.raw", b"0123456789")
    run_vsync("commit", "-m", "tiny edit", cwd=a)
    second = porcelain(remote.run("push", "--porcelain", remote.url(server), *remote.cmd(), cwd=a))
    moved = int(second["chunk_bytes"]) + int(second["pack_bytes"])
    assert moved < size * 0.02, second
    assert int(second["wire_sent"]) < size * 0.02
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "video.raw").read_bytes() == (a / "video.raw").read_bytes()


def _stored_chunks(repo: Path) -> int:
    code = (
        "import sys; from pathlib import Path; from vsync.model.repository import Repository as R;"
        "r=R.open_path(Path(sys.argv[1])); r.chunks.recover_temp_packs();"
        "print(r.chunks.count()); r.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def _temp_pack_bytes(repo: Path) -> int:
    chunks = repo / "chunks"
    total = 0
    for name in os.listdir(chunks):
        if name.endswith((".vpk.tmp", ".vpk")):
            with contextlib.suppress(FileNotFoundError):
                total += (chunks / name).stat().st_size
    return total


@pytest.mark.slow
def test_interrupted_push_resumes_without_resending(remote: RemoteKind, tmp_path: Path) -> None:
    size = 200 << 20
    a = tmp_path / "a"
    a.mkdir()
    run_vsync("init", cwd=a)
    big_file(a / "data.bin", size, seed=11)
    run_vsync("commit", "-m", "data", cwd=a)
    total = _stored_chunks(a)
    server = tmp_path / "server"
    run_vsync("init", "--bare", server, cwd=tmp_path)
    env = dict(remote.env or os.environ)
    env.update(VSYNC_AUTHOR_NAME="t", VSYNC_AUTHOR_EMAIL="t@e")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsync", "push", "--porcelain", remote.url(server), *remote.cmd()],
        cwd=a,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    # The receiver keeps up to two batches of chunk wants in flight (tens of MiB) besides
    # what it has written, so stop early enough that the rest cannot all be on the way.
    while _temp_pack_bytes(server) < size // 8:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # The server end goes on storing what is already in its pipe until it sees the
    # connection close; count what it kept only once it has exited.
    wait_for_serve_exit(server)
    received = _stored_chunks(server)
    assert 0 < received < total
    out = porcelain(remote.run("push", "--porcelain", remote.url(server), *remote.cmd(), cwd=a))
    assert int(out["chunks"]) == total - received  # nothing moved twice
    fsck_clean(a)
    fsck_clean(server)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "data.bin").read_bytes() == (a / "data.bin").read_bytes()


def test_racing_pushes_never_lose_a_commit(remote: RemoteKind, tmp_path: Path) -> None:
    """Two copies push diverged commits at the same moment, 20 times: exactly one
    wins each time, the other gets exit 1, and every accepted commit stays.

    Each server end holds the lock a little before its compare-and-swap
    (``serve/lock-taken=sleep``), and the fault-point trace of each round proves
    the race was real: the loser's server had checked the branch and received
    everything (it reached the lock, which a push refused up front never takes)
    while the winner's was on its way to moving the branch, and it was refused
    under the lock (it never reached ``ref-swap``)."""
    server = tmp_path / "server"
    seed = tmp_path / "seed"
    seed.mkdir()
    run_vsync("init", cwd=seed)
    (seed / "f.txt").write_text("base\n")
    run_vsync("commit", "-m", "base", cwd=seed)
    remote.run("push", "--create", remote.url(server), *remote.cmd(), cwd=seed)
    clones = []
    for name in ("x", "y"):
        c = tmp_path / name
        remote.run("clone", remote.url(server), c, *remote.cmd(), cwd=tmp_path)
        clones.append(c)
    accepted: list[bytes] = []
    env = dict(remote.env or os.environ)
    env.update(VSYNC_AUTHOR_NAME="t", VSYNC_AUTHOR_EMAIL="t@e")
    env[faults.ENV] = "serve/lock-taken=sleep:0.3"
    overlapped = 0
    for round_no in range(20):
        heads = {}
        for c in clones:  # each round's set-up runs in-process: only the race is timed
            (c / f"{c.name}.txt").write_text(f"{c.name} round {round_no}\n")
            heads[c] = _commit_in_process(c, f"{c.name} {round_no}")
        trace = tmp_path / f"trace-{round_no}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "vsync", "push", *remote.cmd()],
                cwd=c,
                env={**env, faults.TRACE_ENV: str(trace)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for c in clones
        ]
        results = []
        for proc in procs:
            _out, err = proc.communicate()
            results.append((proc.returncode, err.decode()))
        codes = [code for code, _err in results]
        assert sorted(codes) == [0, 1], results
        assert "remote has commits you do not have; pull first" in results[codes.index(1)][1]
        winner = clones[codes.index(0)]
        accepted.append(heads[winner])
        wait_for_serve_exit(server)  # both server ends have written their trace
        points = Counter(tuple(line.split()[:2]) for line in trace.read_text().splitlines())
        assert points["serve", "ref-swap"] == 1, points
        overlapped += points["serve", "lock-taken"] == 2
        assert _head_in_process(server) == heads[winner]
        for c in clones:
            if c is not winner:  # diverged: move the loser onto the winner's commit
                _reset_onto(c, heads[winner], server)
    # A push refused before the lock proves nothing about the lock; most rounds must race.
    assert overlapped >= 10, f"only {overlapped} of 20 rounds raced under the lock"
    history = _history_in_process(server)
    assert all(commit in history for commit in accepted)
    fsck_clean(server)


def _commit_in_process(root: Path, message: str) -> bytes:
    from vsync.model.repository import Repository
    from vsync.ops.commit import commit

    with Repository.open_path(root) as repo:
        result = commit(repo, message, lambda _m: None)
        assert result.commit_id is not None
        return result.commit_id


def _head_in_process(path: Path) -> bytes | None:
    from vsync.model.repository import Repository

    with Repository.open_path(path) as repo:
        return repo.head()


def _history_in_process(path: Path) -> set[bytes]:
    from vsync.model.repository import Repository

    with Repository.open_path(path) as repo:
        head = repo.head()
        assert head is not None
        seen: set[bytes] = set()
        todo = [head]
        while todo:
            oid = todo.pop()
            if oid not in seen:
                seen.add(oid)
                todo.extend(repo.gitdb.commit(oid).parents)
        return seen


def _reset_onto(clone: Path, commit_id: bytes, server: Path) -> None:
    """Fetch the winner's commit (from the server's files) and move the loser there."""
    from vsync.model.repository import BRANCH, Repository
    from vsync.model.snapshot import commit_tree, flatten
    from vsync.ops.checkout import apply_snapshot
    from vsync.sync.client import SyncOptions, fetch
    from vsync.sync.remotes import Remote
    from vsync.sync.url import parse_url

    with Repository.open_path(clone) as repo:
        fetch(repo, Remote(None, parse_url(str(server))), SyncOptions())
        target = flatten(repo.gitdb, commit_tree(repo.gitdb, commit_id))
        apply_snapshot(repo, target, [""], True, lambda _m: None, whole_folder=True)
        assert repo.gitdb.swap_ref(
            BRANCH, repo.head(), commit_id, committer=b"t <t@e>", message=b"test: reset"
        )


@pytest.mark.parametrize("mode", ["bad-chunk", "bad-pack"])
def test_hostile_server_data_is_refused(remote: RemoteKind, tmp_path: Path, mode: str) -> None:
    a = tmp_path / "a"
    init_with_files(a)
    b = tmp_path / "b"
    out = remote.run("clone", remote.url(a), b, *remote.cmd(mode), cwd=tmp_path, check=False)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert not b.exists()
    # fetching into an existing copy: refused, and that copy stays intact
    remote.run("clone", remote.url(a), b, *remote.cmd(), cwd=tmp_path)
    (a / "notes.txt").write_text("changed\n")
    (a / "more.bin").write_bytes(os.urandom(100_000))
    run_vsync("commit", "-m", "more", cwd=a)
    before_head, before = head_of(b), snapshot_tree(b)
    out = remote.run("pull", remote.url(a), *remote.cmd(mode), cwd=b, check=False)
    assert out.returncode == 1, out.stderr
    word = "chunk" if mode == "bad-chunk" else "pack"
    assert word in out.stderr
    assert head_of(b) == before_head and snapshot_tree(b) == before
    fsck_clean(b)
    remote.run("pull", cwd=b)  # the honest server still works afterwards
    assert (b / "notes.txt").read_text() == "changed\n"


HOSTILE_NAMES = [b"..", b".vsync", b"a/b", b"/etc", b".VSYNC", b"a\\b"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n.decode())
def test_hostile_tree_entries_are_refused(remote: RemoteKind, tmp_path: Path, name: bytes) -> None:
    a = tmp_path / "a"
    init_with_files(a)
    _plant_tree_entry(a, name)
    b = tmp_path / "b"
    out = remote.run("clone", remote.url(a), b, *remote.cmd(), cwd=tmp_path, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "unsafe" in out.stderr or "refus" in out.stderr
    assert not b.exists()
    assert not (tmp_path / "notes.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["a"]


def _plant_tree_entry(repo_root: Path, name: bytes) -> None:
    """Commit, behind vsync's back, a tree whose entry is named ``name``."""
    code = r"""
import sys, time
from pathlib import Path
from dulwich.objects import Commit, Tree
from dulwich.repo import Repo
from vsync.model.repository import Repository, BRANCH
r = Repository.open_path(Path(sys.argv[1]))
g = Repo(str(r.control / "git"))
head = r.head()
old_tree = g[g[head].tree]
mode, blob = old_tree[b"notes.txt"]
t = Tree()
t.add(b"notes.txt", mode, blob)
name = sys.argv[2].encode("latin-1")
raw = t.as_raw_string() + b"100644 " + name + b"\0" + bytes.fromhex(blob.decode())
evil = Tree.from_raw_string(Tree.type_num, raw)
c = Commit()
c.tree = evil.id; c.parents = [head]; c.author = c.committer = b"e <e@e>"
c.author_time = c.commit_time = int(time.time()); c.author_timezone = c.commit_timezone = 0
c.message = b"evil\n"
g.object_store.add_objects([(evil, None), (c, None)])
g.refs.set_if_equals(BRANCH, head, c.id)
g.close()
r.close()
"""
    subprocess.run([sys.executable, "-c", code, str(repo_root), name.decode("latin-1")], check=True)


def test_pull_porcelain_reports_old_and_conflict_exit(tmp_path: Path) -> None:
    remote = RemoteKind("path", None)
    a = tmp_path / "a"
    init_with_files(a)
    b = tmp_path / "b"
    remote.run("clone", remote.url(a), b, cwd=tmp_path)
    first = porcelain(remote.run("fetch", "--porcelain", cwd=b))
    (a / "notes.txt").write_text("a side\n")
    run_vsync("commit", "-m", "a", cwd=a)
    (b / "notes.txt").write_text("b side\n")
    run_vsync("commit", "-m", "b", cwd=b)
    out = remote.run("pull", "--porcelain", cwd=b, check=False)
    fields = porcelain(out)
    assert out.returncode == 1 and fields["outcome"] == "conflicts"
    assert fields["old"] == first["new"] != fields["new"]
    assert run_vsync("remote", "-v", cwd=b).stdout.startswith("origin\t")


def _last_message(path: Path) -> str:
    return run_vsync("log", "-n", "1", "--oneline", cwd=path).stdout.split(" ", 1)[1].strip()


def test_sync_message_and_the_configured_automatic_message(tmp_path: Path) -> None:
    remote = RemoteKind("path", None)
    a = tmp_path / "a"
    init_with_files(a)
    b = tmp_path / "b"
    remote.run("clone", remote.url(a), b, cwd=tmp_path)
    (b / "notes.txt").write_text("with a message\n")
    remote.run("sync", "-m", "photos from the trip", cwd=b)
    assert _last_message(b) == "photos from the trip" == _last_message(a)

    (b / "notes.txt").write_text("default message\n")
    remote.run("sync", cwd=b)
    assert _last_message(b).startswith("sync from testhost at ")

    with open(b / ".vsync" / "config", "a") as f:
        f.write('[commit]\n\tautoMessage = "{command} by {host}: {date}"\n')
    (b / "notes.txt").write_text("configured message\n")
    remote.run("sync", cwd=b)
    assert re.fullmatch(r"sync by testhost: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", _last_message(b))
    (b / "notes.txt").write_text("configured message, from watch\n")
    remote.run("watch", "--once", cwd=b)
    assert _last_message(b).startswith("watch by testhost: ")

    with open(b / ".vsync" / "config", "a") as f:
        f.write('[commit]\n\tautoMessage = " "\n')
    (b / "notes.txt").write_text("not committed\n")
    out = remote.run("sync", cwd=b, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().endswith(
        "commit.autoMessage is empty; set a message or remove the key"
    )
    assert len(out.stderr.strip().splitlines()) == 1
