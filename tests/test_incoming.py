"""Received git packs in incoming/: what a killed transfer left goes, a live one stays.

A receiver holds an flock on its ``incoming/in-*.pack`` from its creation until
it is removed (vsync.store.templock); the next transfer that receives and gc
remove only packs whose flock is free. Real transfers are killed (SIGKILL) or
paused at the fault point ``incoming-pack-received``: on the fetching client,
and on the server of a push (a local ``vsync serve`` inherits the fault).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import VSYNC, run_vsync
from vsync.store import faults

KILL = {faults.ENV: "incoming-pack-received=kill"}


def received(control: Path) -> list[str]:
    folder = control / "incoming"
    return sorted(n for n in os.listdir(folder) if n.startswith("in-")) if folder.is_dir() else []


def assert_fsck_clean(cwd: Path) -> None:
    r = run_vsync("fsck", cwd=cwd)
    assert "no problems" in r.stdout, (r.stdout, r.stderr)


def source_and_clone(tmp_path: Path) -> tuple[Path, Path]:
    """A source repository with a second commit its clone has not fetched yet."""
    source = tmp_path / "source"
    source.mkdir()
    run_vsync("init", cwd=source)
    (source / "a.txt").write_text("one\n")
    run_vsync("commit", "-m", "one", cwd=source)
    local = tmp_path / "local"
    run_vsync("clone", source, local, cwd=tmp_path)
    (source / "a.txt").write_text("two\n")
    (source / "b.bin").write_bytes(os.urandom(200_000))
    run_vsync("commit", "-m", "two", cwd=source)
    return source, local


def test_a_pack_left_by_a_killed_fetch_is_removed_by_the_next_fetch(tmp_path: Path) -> None:
    _source, local = source_and_clone(tmp_path)
    r = run_vsync("fetch", cwd=local, check=False, env=KILL)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    left = received(local / ".vsync")
    assert any(n.endswith(".pack") for n in left), left
    run_vsync("pull", cwd=local)
    assert received(local / ".vsync") == []
    assert (local / "a.txt").read_text() == "two\n"
    assert_fsck_clean(local)


def test_a_pack_left_by_a_killed_fetch_is_removed_by_gc(tmp_path: Path) -> None:
    _source, local = source_and_clone(tmp_path)
    r = run_vsync("fetch", cwd=local, check=False, env=KILL)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    [pack] = [n for n in received(local / ".vsync") if n.endswith(".pack")]
    err = run_vsync("gc", cwd=local).stderr
    assert f"gc: removed incoming/{pack}" in err, err
    assert received(local / ".vsync") == []
    assert_fsck_clean(local)


def test_a_pack_left_by_a_server_killed_mid_push_is_removed_by_the_next_push(
    tmp_path: Path,
) -> None:
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
    r = run_vsync("push", cwd=work, check=False, env=KILL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert any(n.endswith(".pack") for n in received(remote)), received(remote)
    run_vsync("push", cwd=work)
    assert received(remote) == []
    assert_fsck_clean(remote)
    clone = tmp_path / "clone"
    run_vsync("clone", remote, clone, cwd=tmp_path)
    assert (clone / "a.txt").read_text() == "two\n"


def test_a_live_transfers_pack_is_never_removed(tmp_path: Path) -> None:
    """A fetch paused with its received pack in incoming/: gc and a second fetch run
    meanwhile, and the paused fetch then completes with its pack intact."""
    _source, local = source_and_clone(tmp_path)
    control = local / ".vsync"
    release = tmp_path / "release"
    env = {**os.environ, faults.ENV: f"incoming-pack-received=hold:{release}"}
    env.setdefault("VSYNC_AUTHOR_NAME", "Test Author")
    env.setdefault("VSYNC_AUTHOR_EMAIL", "test@example.com")
    paused = subprocess.Popen(
        [*VSYNC, "fetch"], cwd=local, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not any(n.endswith(".pack") for n in received(control)):
            assert paused.poll() is None, paused.communicate()
            assert time.monotonic() < deadline, "the fetch never received its pack"
            time.sleep(0.02)
        [live] = [n for n in received(control) if n.endswith(".pack")]
        run_vsync("gc", cwd=local)
        assert live in received(control)
        run_vsync("fetch", cwd=local)  # receives the same pack into a file of its own
        assert live in received(control)
        release.touch()
        _out, err = paused.communicate(timeout=120)
    finally:
        if paused.poll() is None:
            paused.kill()
            paused.communicate()
    assert paused.returncode == 0, err
    assert received(control) == []
    run_vsync("pull", cwd=local)
    assert (local / "a.txt").read_text() == "two\n"
    assert_fsck_clean(local)
