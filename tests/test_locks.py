"""Locks: a live holder is waited for and then named; what a killed process left is broken.

The repository lock is an flock (the kernel drops it when its holder dies),
so it is never stale; its exclusive holder records ``<pid> <command>`` in the
lock file, and a command that times out waiting names that process if it is
alive. dulwich's ``X.lock`` files are another matter: a process killed while
one exists leaves it behind. Real processes, paused or killed at named fault
points (vsync.store.faults), make each case happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import VSYNC, run_vsync
from vsync.store import faults

AUTHOR = {
    "VSYNC_AUTHOR_NAME": "Test Author",
    "VSYNC_AUTHOR_EMAIL": "test@example.com",
    "VSYNC_HOST": "testhost",
}


def start(cwd: Path, *args: str, fault: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **AUTHOR, faults.ENV: fault}
    env.pop("VSYNC_DEBUG", None)
    return subprocess.Popen(
        [*VSYNC, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def assert_fsck_clean(cwd: Path) -> None:
    r = run_vsync("fsck", cwd=cwd)
    assert "no problems" in r.stdout and not r.stderr.strip(), (r.stdout, r.stderr)


def test_a_live_holder_is_named_with_its_pid_and_command(work: Path, vsync) -> None:
    (work / "a.txt").write_text("one\n")
    vsync("commit", "-m", "one")
    lock = work / ".vsync" / "lock"
    gc = start(work, "gc", fault="gc-marked=sleep:60")
    try:
        wait_for("gc to hold the lock", lambda: lock.read_text().startswith(f"{gc.pid} "), gc)
        (work / "b.txt").write_text("two\n")
        r = run_vsync(
            "commit", "-m", "two", cwd=work, check=False, env={"VSYNC_LOCK_TIMEOUT": "0.5"}
        )
        assert r.returncode == 1, r.stderr
        assert (
            f"another vsync process (pid {gc.pid}: vsync gc) holds the repository lock" in r.stderr
        ), r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
    finally:
        stop(gc)
    # gc was killed: its record stays in the file, but its flock went with it
    assert lock.read_text().startswith(f"{gc.pid} vsync gc")
    vsync("commit", "-m", "two")
    assert_fsck_clean(work)


def test_a_record_left_by_a_dead_process_is_never_named(work: Path, vsync) -> None:
    """A commit holds the shared lock (paused while it writes chunks); the lock file
    still records a gc that was killed: the timed-out gc names nobody."""
    (work / "a.txt").write_text("one\n")
    vsync("commit", "-m", "one")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (work / ".vsync" / "lock").write_text(f"{dead.pid} vsync gc\n")
    (work / "b.txt").write_text("two\n")
    commit = start(work, "commit", "-m", "two", fault="temp-pack-created=sleep:60")
    chunks = work / ".vsync" / "chunks"
    try:
        wait_for("the commit to write chunks", lambda: any(chunks.glob("*.vpk.tmp")), commit)
        r = run_vsync("gc", cwd=work, check=False, env={"VSYNC_LOCK_TIMEOUT": "0.5"})
        assert r.returncode == 1, r.stderr
        assert "another vsync process holds the repository lock" in r.stderr, r.stderr
        assert "pid" not in r.stderr, r.stderr
    finally:
        stop(commit)
    vsync("commit", "-m", "two")
    assert_fsck_clean(work)


def test_a_ref_lock_left_by_a_killed_commit_is_broken(work: Path, vsync) -> None:
    (work / "a.txt").write_text("one\n")
    vsync("commit", "-m", "one")
    (work / "a.txt").write_text("two\n")
    r = run_vsync(
        "commit", "-m", "two", cwd=work, check=False, env={faults.ENV: "ref-lock-held=kill"}
    )
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    stale = work / ".vsync" / "git" / "refs" / "heads" / "main.lock"
    assert stale.exists()
    r = vsync("commit", "-m", "two")
    assert "removed the stale lock file git/refs/heads/main.lock" in r.stderr, r.stderr
    assert not stale.exists()
    assert "two" in vsync("log").stdout
    assert_fsck_clean(work)


def test_a_ref_lock_left_by_a_server_killed_mid_push_is_broken(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    remote = tmp_path / "remote"
    run_vsync("init", cwd=work)
    (work / "a.txt").write_text("one\n")
    run_vsync("commit", "-m", "one", cwd=work)
    run_vsync("remote", "add", "origin", remote, cwd=work)
    run_vsync("push", "--create", cwd=work)
    (work / "a.txt").write_text("two\n")
    run_vsync("commit", "-m", "two", cwd=work)
    # the server (a local `vsync serve` the client starts) inherits the fault
    r = run_vsync("push", cwd=work, check=False, env={faults.ENV: "ref-lock-held=kill"})
    assert r.returncode == 1, (r.returncode, r.stderr)
    stale = remote / "git" / "refs" / "heads" / "main.lock"
    assert stale.exists()
    run_vsync("push", cwd=work)
    assert not stale.exists()
    assert_fsck_clean(remote)
    assert_fsck_clean(work)
    clone = tmp_path / "clone"
    run_vsync("clone", remote, clone, cwd=tmp_path)
    assert (clone / "a.txt").read_text() == "two\n"


def test_a_config_lock_left_by_a_killed_process_is_broken(work: Path, vsync) -> None:
    """As a kill would leave it (dulwich's config write has no fault point)."""
    (work / ".vsync" / "config.lock").write_bytes(b"[half")
    r = vsync("remote", "add", "origin", str(work.parent / "elsewhere"))
    assert "removed the stale lock file config.lock" in r.stderr, r.stderr
    assert "origin" in vsync("remote", "list").stdout


def test_a_tracking_ref_lock_left_by_a_killed_fetch_is_broken(tmp_path: Path) -> None:
    """fetch moves refs/remotes/origin/main holding no repository lock; a lock file a
    killed fetch left there (planted as the kill leaves it) is broken too."""
    source = tmp_path / "source"
    source.mkdir()
    run_vsync("init", cwd=source)
    (source / "a.txt").write_text("one\n")
    run_vsync("commit", "-m", "one", cwd=source)
    local = tmp_path / "local"
    run_vsync("clone", source, local, cwd=tmp_path)
    (source / "a.txt").write_text("two\n")
    run_vsync("commit", "-m", "two", cwd=source)
    stale = local / ".vsync" / "git" / "refs" / "remotes" / "origin" / "main.lock"
    stale.write_bytes(b"0" * 20)
    r = run_vsync("pull", cwd=local)
    assert "removed the stale lock file git/refs/remotes/origin/main.lock" in r.stderr, r.stderr
    assert (local / "a.txt").read_text() == "two\n"
    assert_fsck_clean(local)
