"""The mass-change guard (issue 13): pull, sync and merge stop before a step that
deletes or overwrites many tracked files, ask on a terminal, and apply it only when
allowed; an applied pull stays one ``vsync undo`` away."""

from __future__ import annotations

import os
import pty
import select
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import RemoteKind, Run, clear_worktree, run_vsync, snapshot_tree

from vsync.model.repository import Repository
from vsync.ops.mass_change import MassChangeRefused
from vsync.sync.client import SyncOptions
from vsync.sync.pull import pull, sync
from vsync.sync.remotes import find_remote

N = 20  # tracked files in every copy; the guard's default limit is more than 10%


def head_of(path: Path) -> str:
    return run_vsync("log", "--oneline", "-n", "1", cwd=path).stdout.split()[0]


def fill(root: Path, n: int = N) -> None:
    (root / "docs").mkdir(exist_ok=True)
    for i in range(n):
        (root / "docs" / f"f{i:02d}.txt").write_text(f"file {i}\n")


def copies(tmp_path: Path, remote: RemoteKind | None = None, n: int = N) -> tuple[Path, Path, Path]:
    """``a`` with ``n`` files pushed to the bare ``hub``, and ``b`` cloned from it."""
    a, hub, b = tmp_path / "a", tmp_path / "hub.vsync", tmp_path / "b"
    a.mkdir()
    run_vsync("init", cwd=a)
    fill(a, n)
    run_vsync("commit", "-m", "files", cwd=a)
    url, cmd = (remote.url(hub), remote.cmd()) if remote else (str(hub), [])
    run = remote.run if remote else (lambda *args, cwd: run_vsync(*args, cwd=cwd))
    run("remote", "add", "origin", url, *cmd, cwd=a)
    run("push", "--create", cwd=a)
    run("clone", url, b, *cmd, cwd=tmp_path)
    return a, hub, b


def set_limits(root: Path, **keys: str) -> None:
    lines = "".join(f"\t{k} = {v}\n" for k, v in keys.items())
    with open(root / ".vsync" / "config", "a") as f:
        f.write(f"[safety]\n{lines}")


def refused(out: Run) -> None:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "vsync: error: refusing a mass change" in out.stderr
    assert "--allow-mass-change" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # one line, no traceback


def test_wiped_folder_sync_refuses_and_the_other_copy_is_untouched(
    remote: RemoteKind, tmp_path: Path
) -> None:
    a, hub, b = copies(tmp_path, remote)
    before_b, head = snapshot_tree(b), head_of(a)
    clear_worktree(a)  # a wiped (or unmounted) folder
    out = remote.run("sync", cwd=a, check=False)
    refused(out)
    assert f"{N} of the {N} tracked files were deleted" in out.stderr
    assert head_of(a) == head and head_of(hub) == head  # nothing committed, nothing sent
    remote.run("sync", cwd=b)
    assert snapshot_tree(b) == before_b and head_of(b) == head


def test_allowed_mass_change_goes_through_and_undo_brings_the_pull_back(tmp_path: Path) -> None:
    a, hub, b = copies(tmp_path)
    before_b, old = snapshot_tree(b), head_of(b)
    shutil.rmtree(a / "docs")
    run_vsync("sync", "--allow-mass-change", cwd=a)
    assert head_of(hub) == head_of(a) != old

    out = run_vsync("pull", cwd=b, check=False)
    refused(out)
    assert f"would delete {N} and overwrite 0 of the {N} tracked files" in out.stderr
    assert snapshot_tree(b) == before_b and head_of(b) == old  # the folder and main as they were
    assert run_vsync("status", "--porcelain", cwd=b).stdout == ""

    out = run_vsync("pull", "--allow-mass-change", cwd=b)
    assert f"0 files written, {N} deleted" in out.stdout
    assert snapshot_tree(b) == {}
    out = run_vsync("undo", cwd=b)
    assert out.stdout.startswith("Undid pull")
    assert snapshot_tree(b) == before_b and head_of(b) == old
    assert run_vsync("status", "--porcelain", cwd=b).stdout == ""


def test_a_merge_that_deletes_most_files_is_refused_by_pull_and_by_merge(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path)
    for i in range(N - 2):
        (a / "docs" / f"f{i:02d}.txt").unlink()
    run_vsync("sync", "--allow-mass-change", cwd=a)
    (b / "mine.txt").write_text("b's own work\n")  # diverged: pull must merge
    run_vsync("commit", "-m", "b's work", cwd=b)
    before, head = snapshot_tree(b), head_of(b)
    refused(run_vsync("pull", cwd=b, check=False))
    refused(run_vsync("merge", "origin/main", cwd=b, check=False))  # after the pull's fetch
    assert snapshot_tree(b) == before and head_of(b) == head
    assert not (b / ".vsync" / "merge").exists()
    out = run_vsync("merge", "origin/main", "--allow-mass-change", cwd=b)
    assert out.stdout.startswith("Merged origin/main into main")
    assert sorted(snapshot_tree(b)) == ["docs/f18.txt", "docs/f19.txt", "mine.txt"]


def test_overwriting_most_files_counts_as_a_mass_change(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path)
    for i in range(N):
        (a / "docs" / f"f{i:02d}.txt").write_bytes(b"\x00encrypted\x00")
    out = run_vsync("sync", cwd=a, check=False)
    refused(out)
    assert f"0 of the {N} tracked files were deleted and {N} changed" in out.stderr
    run_vsync("sync", "--allow-mass-change", cwd=a)
    out = run_vsync("pull", cwd=b, check=False)
    refused(out)
    assert f"would delete 0 and overwrite {N} of the {N}" in out.stderr


def test_moving_files_is_not_a_mass_change(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path)
    (a / "docs").rename(a / "papers")
    out = run_vsync("sync", cwd=a)
    assert "Committed" in out.stdout
    run_vsync("pull", cwd=b)
    assert snapshot_tree(b) == snapshot_tree(a)


def test_under_the_minimum_nothing_is_refused(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path, n=6)
    for i in range(4):  # 4 of 6 (67%): above the fraction, below the minimum of 5
        (a / "docs" / f"f{i:02d}.txt").unlink()
    run_vsync("sync", cwd=a)
    run_vsync("pull", cwd=b)
    assert sorted(snapshot_tree(b)) == ["docs/f04.txt", "docs/f05.txt"]


def test_thresholds_come_from_the_config(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path)
    for i in range(8):  # 8 of 20: 40%
        (a / "docs" / f"f{i:02d}.txt").unlink()
    set_limits(a, massChangeFraction="0.5")
    run_vsync("sync", cwd=a)  # 40% is under a limit of 50%
    refused(run_vsync("pull", cwd=b, check=False))  # b keeps the default 10%
    set_limits(b, massChangeFraction="1", massChangeFiles="7", massChangeMinimum="2")
    out = run_vsync("pull", cwd=b, check=False)
    refused(out)  # 8 files: more than 7
    assert "more than 100% or more than 7 files" in out.stderr
    set_limits(b, massChangeFiles="8")  # the later key wins, as in git
    run_vsync("pull", cwd=b)
    assert len(snapshot_tree(b)) == N - 8


@pytest.mark.parametrize(
    ("key", "value"),
    [("massChangeFraction", "lots"), ("massChangeFraction", "1.5"), ("massChangeFiles", "-1")],
)
def test_a_bad_limit_is_one_clear_error(tmp_path: Path, key: str, value: str) -> None:
    a, _hub, b = copies(tmp_path)
    (a / "docs" / "f00.txt").write_text("edited\n")
    run_vsync("sync", cwd=a)
    set_limits(b, **{key: value})
    out = run_vsync("pull", cwd=b, check=False)
    assert out.returncode == 2
    assert (
        out.stderr
        == f"vsync: error: {b / '.vsync' / 'config'}: safety.{key} must be "
        + (
            "a number from 0 to 1 (0.1: 10%)"
            if key == "massChangeFraction"
            else "a whole number, 0 or more"
        )
        + f", not {value!r}\n"
    )


def on_terminal(args: list[str], cwd: Path, answer: bytes) -> tuple[int, str]:
    """Run vsync with its stdio on a pseudo-terminal; answer the question once it is asked."""
    env = dict(os.environ, VSYNC_AUTHOR_NAME="T", VSYNC_AUTHOR_EMAIL="t@x", VSYNC_HOST="tty")
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "vsync", *args], env)
    text, asked = b"", False
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
    while True:
        assert time.monotonic() < deadline, text.decode("utf-8", "replace")
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        text += data
        if not asked and b"[y/N] " in text:
            os.write(fd, answer)
            asked = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert asked, text.decode("utf-8", "replace")
    return os.waitstatus_to_exitcode(status), text.decode("utf-8", "replace")


def test_a_terminal_is_asked_and_no_refuses_yes_applies(tmp_path: Path) -> None:
    a, _hub, b = copies(tmp_path)
    before, head = snapshot_tree(a), head_of(a)
    clear_worktree(a)
    code, text = on_terminal(["sync"], a, b"n\n")
    assert code == 1 and f"{N} of the {N} tracked files were deleted" in text
    assert "Commit and share it anyway? [y/N]" in text and "refusing a mass change" in text
    assert head_of(a) == head
    code, text = on_terminal(["sync"], a, b"y\n")
    assert code == 0 and "Committed" in text, text

    before_b = snapshot_tree(b)
    code, text = on_terminal(["pull"], b, b"\n")  # Enter: the default, no
    assert code == 1 and "Apply it anyway? [y/N]" in text
    assert snapshot_tree(b) == before_b == before
    code, text = on_terminal(["pull"], b, b"yes\n")
    assert code == 0 and f"0 files written, {N} deleted" in text, text
    assert snapshot_tree(b) == {}


def test_ops_pull_and_sync_refuse_without_a_callback(tmp_path: Path) -> None:
    """The contract `vsync watch` builds on: ops-level pull() and sync() with
    allow_mass_change=False and no confirm raise MassChangeRefused, changing nothing."""
    a, _hub, b = copies(tmp_path)
    before_a, before_b, head = snapshot_tree(a), snapshot_tree(b), head_of(a)
    clear_worktree(a)
    opts = SyncOptions()
    warnings: list[str] = []
    with Repository.discover(a) as repo, pytest.raises(MassChangeRefused) as caught:
        sync(repo, find_remote(repo, None), opts, warnings.append, allow_mass_change=False)
    assert caught.value.change.deleted == N and caught.value.change.step == "commit"
    assert "nothing was committed" in caught.value.change.describe()
    assert head_of(a) == head

    fill(a)
    (a / "docs" / "f00.txt").unlink()
    (a / "extra").write_text("x")
    run_vsync("commit", "-m", "small", cwd=a)
    shutil.rmtree(a / "docs")
    run_vsync("sync", "--allow-mass-change", cwd=a)
    with Repository.discover(b) as repo, pytest.raises(MassChangeRefused) as caught:
        pull(repo, find_remote(repo, None), opts, warnings.append, allow_mass_change=False)
    assert caught.value.change.deleted == N and caught.value.change.step == "apply"
    assert snapshot_tree(b) == before_b and head_of(b) == head
    with Repository.discover(b) as repo, pytest.raises(MassChangeRefused):
        sync(repo, find_remote(repo, None), opts, warnings.append, confirm=lambda change: False)
    assert snapshot_tree(b) == before_b and head_of(b) == head
    assert before_a == before_b
