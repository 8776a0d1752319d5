"""``vsync gc --remote``: what no branch reaches is deleted from an object-store remote
(an encrypted folder, a plain or encrypted bucket on a real SeaweedFS), under a lock
object that keeps gc and pushes apart (docs/format.md, "Remote locks", "Remote gc")."""

from __future__ import annotations

import json
import random
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import snapshot_tree, wait_for
from test_s3_remote import PASS, make_work, no_passphrase, one_error_line, vs

from vsync.sync.objstore import ObjectStore
from vsync.sync.objstore.folder import FolderStore
from vsync.sync.objstore.s3 import S3Store
from vsync.sync.objstore.s3config import s3_settings
from vsync.sync.url import parse_url


@dataclass
class Target:
    url: str
    env: dict[str, str]
    store: ObjectStore


@pytest.fixture(params=["folder-encrypted", "s3-plain", "s3-encrypted"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    kind = request.param
    if kind == "folder-encrypted":
        url = str(tmp_path / "remote")
        env = dict(PASS)
        vs("init", "--bare", "--encrypted", "--scrypt-log2n", "10", url, cwd=tmp_path, env=env)
        return Target(url, env, FolderStore(Path(url)))
    seaweed = request.getfixturevalue("seaweed")
    url = request.getfixturevalue("s3_url")
    env = {**PASS, **seaweed.env()}
    if kind == "s3-plain":
        env = no_passphrase(env)
        vs("init", "--bare", url, cwd=tmp_path, env=env)
    else:
        vs("init", "--bare", "--encrypted", "--scrypt-log2n", "10", url, cwd=tmp_path, env=env)
    return Target(url, env, S3Store(parse_url(url), s3_settings(environ=env)))


def objects(store: ObjectStore) -> set[str]:
    return {n for n in store.list("") if not n.startswith("locks/")}


def push_killed_at(work: Path, env: dict[str, str], point: str) -> None:
    """``vsync push`` in ``work``, killed (SIGKILL) at the fault point ``point``."""
    out = vs("push", cwd=work, env={**env, "VSYNC_FAULTS": f"{point}=kill"}, check=False)
    assert out.returncode == -9, out.stderr


def new_file(work: Path, name: str, seed: int) -> None:
    (work / name).write_bytes(random.Random(seed).randbytes(1 << 20))
    vs("commit", "-q", "-m", name, cwd=work, env={})


def gc_remote(work: Path, env: dict[str, str], check: bool = True) -> object:
    return vs("gc", "--remote", "origin", cwd=work, env=env, check=check)


def test_gc_removes_what_no_branch_reaches_and_keeps_the_rest(
    tmp_path: Path, target: Target
) -> None:
    """Two pushes killed (one before its branch record: packs, indexes and a git pack
    nothing names; one before its index: a pack with no index) leave garbage and
    their locks; gc takes the dead locks over, deletes exactly the garbage, and the
    remote is whole: fsck clean, a clone equal, a later push complete."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    pushed = snapshot_tree(a)
    before = objects(target.store)
    new_file(a, "lost-one.bin", 1)
    push_killed_at(a, env, "push/encrypted-push-before-branch")
    new_file(a, "lost-two.bin", 2)
    push_killed_at(a, env, "push/encrypted-push-before-index")
    garbage = objects(target.store) - before
    assert {n.split("/")[0] for n in garbage} == {"packs", "index", "git"}, garbage
    assert len(target.store.list("locks/")) == 2  # what the killed pushes held

    out = gc_remote(a, env)
    assert out.stderr.count("removed the stale lock") == 2, out.stderr
    assert "its process is gone" in out.stderr
    assert "removed 1 chunk pack" in out.stdout and "1 pack without an index" in out.stdout
    assert "1 git pack no branch names" in out.stdout, out.stdout
    assert objects(target.store) == before
    assert target.store.list("locks/") == []
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout
    vs("clone", target.url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == pushed
    vs("push", cwd=a, env=env)
    vs("pull", cwd=tmp_path / "b", env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout
    out = gc_remote(a, env)
    assert "removed 0 chunk packs" in out.stdout and "0 git packs" in out.stdout, out.stdout


def _held(env: dict[str, str], point: str, trace: Path) -> dict[str, str]:
    """``env`` for a vsync held at ``point`` until the test creates ``release(trace)``."""
    return {
        **env,
        "VSYNC_FAULTS": f"{point}=hold:{release(trace)}",
        "VSYNC_FAULTS_TRACE": str(trace),
    }


def release(trace: Path) -> Path:
    """The file whose creation lets a vsync held by :func:`_held` go on."""
    return trace.with_name(trace.name + ".release")


def _reached(trace: Path, point: str) -> bool:
    return trace.exists() and point in trace.read_text()


def _push_held_before_branch(
    pool: ThreadPoolExecutor, work: Path, env: dict[str, str], trace: Path
) -> Future[subprocess.CompletedProcess[str]]:
    """A push from ``work`` on ``pool``, once it holds before moving the branch record (its
    packs and git packs stored)."""
    point = "encrypted-push-before-branch"
    pushing = pool.submit(vs, "push", cwd=work, env=_held(env, f"push/{point}", trace), check=False)
    wait_for("the push to hold", lambda: _reached(trace, point))
    return pushing


def test_a_push_running_during_gc_loses_nothing(tmp_path: Path, target: Target) -> None:
    """A push held after writing its packs and git pack, before its branch record
    names them: a gc started then refuses (the push's shared lock) and deletes
    nothing, so the push completes whole."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    new_file(a, "during-gc.bin", 3)
    trace = tmp_path / "trace"
    with ThreadPoolExecutor(1) as pool:
        pushing = _push_held_before_branch(pool, a, env, trace)
        out = gc_remote(a, env, check=False)
        one_error_line(out, 1, "locked by a shared lock (a push)")
        release(trace).touch()
        assert pushing.result().returncode == 0, pushing.result().stderr
    assert "no problems" in vs("fsck", "--remote", "origin", cwd=a, env=env).stdout
    vs("clone", target.url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)


def test_gc_refuses_while_another_gc_holds_the_lock_and_pushes_wait(
    tmp_path: Path, target: Target
) -> None:
    env = target.env
    a = make_work(tmp_path, target.url, env)
    new_file(a, "after-gc.bin", 4)
    trace = tmp_path / "trace"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(gc_remote, a, _held(env, "gc/remote-gc-deleting", trace), False)
        wait_for("the first gc to hold", lambda: _reached(trace, "remote-gc-deleting"))
        one_error_line(gc_remote(a, env, check=False), 1, "locked by an exclusive lock (gc)")
        out = vs("push", cwd=a, env=env, check=False)
        one_error_line(out, 1, "locked by an exclusive lock (gc)", "nothing was changed")
        release(trace).touch()
        assert first.result().returncode == 0, first.result().stderr
    assert target.store.list("locks/") == []
    vs("push", cwd=a, env=env)
    vs("clone", target.url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)


def _write_lock(target: Target, name: str, exclusive: bool, expires: int) -> None:
    """A lock of another host, sealed as a vsync on that host would (a plain remote's
    null seal: its repository id is in its marker)."""
    from vsync.sync.crypt.detect import plain_repo_id
    from vsync.sync.crypt.locks import LockInfo
    from vsync.sync.crypt.seal import KIND_LOCK, PlainSealer

    repo_id = plain_repo_id(target.store.read("vsync-remote"))
    assert repo_id is not None
    info = LockInfo(exclusive, expires - 1800, expires, "elsewhere pid 4242")
    sealed = PlainSealer(repo_id).seal(KIND_LOCK, name, info.encode())
    assert target.store.write_if_absent(name, sealed)
    assert json.loads(info.encode())["holder"] == "elsewhere pid 4242"


@pytest.mark.parametrize("target", ["s3-plain"], indirect=True)
def test_a_stale_lock_is_taken_over_and_a_live_one_is_not(tmp_path: Path, target: Target) -> None:
    """Another host's exclusive lock: while it has not expired, push and gc refuse;
    once expired, a push ignores it and gc removes it, saying so. A lock that does
    not open is never taken for stale."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    now = int(time.time())
    _write_lock(target, "locks/00000000000000aa", True, now + 600)
    new_file(a, "blocked.bin", 5)
    one_error_line(vs("push", cwd=a, env=env, check=False), 1, "elsewhere pid 4242")
    one_error_line(gc_remote(a, env, check=False), 1, "elsewhere pid 4242")
    assert target.store.delete("locks/00000000000000aa")
    _write_lock(target, "locks/00000000000000bb", True, now - 60)
    vs("push", cwd=a, env=env)
    out = gc_remote(a, env)
    assert "removed the stale lock locks/00000000000000bb" in out.stderr, out.stderr
    assert "expired" in out.stderr
    assert target.store.list("locks/") == []
    assert target.store.write_if_absent("locks/00000000000000cc", b"not a lock")
    one_error_line(gc_remote(a, env, check=False), 1, "does not open", "00000000000000cc")


def test_a_gc_killed_between_an_index_and_its_pack_leaves_the_remote_whole(
    tmp_path: Path, target: Target
) -> None:
    """Killed after deleting a dead pack's index, before the pack: fsck finds the
    remote whole (a pack without an index is a note), and the next gc takes the dead
    gc's lock over and finishes the job."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    before = objects(target.store)
    new_file(a, "lost.bin", 6)
    push_killed_at(a, env, "push/encrypted-push-before-branch")
    killed = gc_remote(a, {**env, "VSYNC_FAULTS": "gc/remote-gc-deleted=kill@1"}, check=False)
    assert killed.returncode == -9, killed.stderr
    left = objects(target.store) - before
    assert {n.split("/")[0] for n in left} == {"packs", "git"}, left  # the index went first
    out = vs("fsck", "--remote", "origin", cwd=a, env=env)
    assert "no problems" in out.stdout and "has no index" in out.stderr, (out.stdout, out.stderr)
    out = gc_remote(a, env)
    assert "removed the stale lock" in out.stderr, out.stderr
    assert "1 pack without an index" in out.stdout and "1 git pack no" in out.stdout, out.stdout
    assert objects(target.store) == before
    vs("push", cwd=a, env=env)
    vs("clone", target.url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == snapshot_tree(a)


@pytest.mark.parametrize("target", ["folder-encrypted"], indirect=True)
def test_a_push_whose_lock_was_taken_for_stale_stops_before_its_branch_moves(
    tmp_path: Path, target: Target
) -> None:
    """A push held before moving the branch, its lock deleted meanwhile (as a gc on
    another host would once it took it for stale): the push checks its lock first,
    stops with one line, exit 1, and the branch stays where it was."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    pushed = snapshot_tree(a)
    new_file(a, "late.bin", 7)
    trace = tmp_path / "trace"
    with ThreadPoolExecutor(1) as pool:
        pushing = _push_held_before_branch(pool, a, env, trace)
        (lock,) = target.store.list("locks/")
        assert target.store.delete(lock)
        release(trace).touch()
        one_error_line(pushing.result(), 1, "removed as stale", lock)
    vs("clone", target.url, "b", cwd=tmp_path, env=env)
    assert snapshot_tree(tmp_path / "b") == pushed


@pytest.mark.parametrize("target", ["s3-plain"], indirect=True)
def test_locks_are_removed_by_hand_stale_ones_then_all_with_a_warning(
    tmp_path: Path, target: Target
) -> None:
    """A push killed on another host leaves a live lock that blocks gc for 30 minutes:
    ``--remove-locks`` removes only the stale ones (restic's unlock) and says how to
    remove the rest; ``--remove-all-locks`` removes every lock, live and unreadable
    ones too, warning for each; then gc runs."""
    env = target.env
    a = make_work(tmp_path, target.url, env)
    now = int(time.time())
    _write_lock(target, "locks/00000000000000aa", False, now + 600)  # a push elsewhere
    _write_lock(target, "locks/00000000000000bb", True, now - 60)  # expired
    one_error_line(gc_remote(a, env, check=False), 1, "elsewhere pid 4242")
    out = vs("gc", "--remote", "origin", "--remove-locks", cwd=a, env=env)
    assert "gc: removed the stale lock locks/00000000000000bb: an exclusive" in out.stdout
    assert "gc: kept the live lock locks/00000000000000aa: a shared lock" in out.stdout
    assert "gc: removed 1 stale lock, kept 1 live lock" in out.stdout, out.stdout
    assert "--remove-all-locks" in out.stderr and "warning" not in out.stderr, out.stderr
    assert target.store.list("locks/") == ["locks/00000000000000aa"]
    one_error_line(gc_remote(a, env, check=False), 1, "elsewhere pid 4242")  # still held
    assert target.store.write_if_absent("locks/00000000000000cc", b"not a lock")
    out = vs("gc", "--remote", "origin", "--remove-all-locks", cwd=a, env=env)
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(
        w.startswith("vsync: warning: removed the live lock") for w in warnings
    )
    assert "locks/00000000000000aa (a shared lock (a push) of elsewhere pid 4242" in warnings[0]
    assert "locks/00000000000000cc (it does not open)" in warnings[1]
    assert "gc: removed 0 stale locks, removed 2 live locks" in out.stdout, out.stdout
    assert target.store.list("locks/") == []
    assert "gc: removed" in gc_remote(a, env).stdout  # gc runs again
    one_error_line(vs("gc", "--remove-locks", cwd=a, env=env, check=False), 2, "--remote")


def test_remote_commands_send_a_plain_folder_remote_to_the_repository(tmp_path: Path) -> None:
    """A plain folder remote is a repository of its own: ``gc --remote`` and ``fsck
    --remote`` say to run the command in it, one line, exit 2, and touch nothing."""
    from conftest import run_vsync

    run_vsync("init", "--bare", str(tmp_path / "r"), cwd=tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    run_vsync("init", cwd=work)
    run_vsync("remote", "add", "origin", "../r", cwd=work)
    for command, says in (
        ("gc", "'vsync gc' in it collects"),
        ("fsck", "'vsync fsck' in it checks"),
    ):
        out = run_vsync(command, "--remote", "origin", cwd=work, check=False)
        assert out.returncode == 2, out.stderr
        assert out.stderr == (
            f"vsync: error: origin is not an encrypted remote; {says} a repository\n"
        )
