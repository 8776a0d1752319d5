"""What the conflict shell shows of a merge and how it runs the editor; no terminal code.

- :func:`describe` numbers the merge state's conflicts as :class:`ConflictInfo`
  rows for the list; :func:`commit_info` tells each side's host and time.
- :func:`folder_bytes` and :func:`has_markers` show what the folder holds.
- :func:`edit` runs an editor on a conflicted file around the saving of
  :mod:`vsync.ops.merge.undoable`, which does every change to the merge
  (choose, restore, reopen) so that each can be taken back.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from vsync.errors import StoppedError, UsageError
from vsync.model.commits import commit_host
from vsync.model.repository import Repository
from vsync.ops.merge import MergeState, PathState
from vsync.ops.merge.disk import disk_path
from vsync.ops.merge.undoable import Undo, changed_since, edit_target, save_conflict

MARKERS = (b"<<<<<<< ", b"=======", b">>>>>>> ")
READ_LIMIT = 16 * 1024 * 1024  # a larger file is described, not read, by 'markers'


@dataclass(frozen=True)
class CommitInfo:
    """One side's commit as the shell shows it."""

    commit: bytes | None
    host: str
    when: str  # "YYYY-MM-DD HH:MM" in the commit's own time zone

    @property
    def short(self) -> str:
        return self.commit.decode()[:10] if self.commit else "none"


@dataclass(frozen=True)
class ConflictInfo:
    index: int  # 1-based position in the list
    state: PathState

    @property
    def path(self) -> str:
        return self.state.path


# -- reading ---------------------------------------------------------------------------


def commit_info(repo: Repository, commit_id: bytes | None) -> CommitInfo:
    if commit_id is None:
        return CommitInfo(None, "unknown", "-")
    obj = repo.gitdb.commit(commit_id)
    try:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(obj.commit_time + obj.commit_timezone))
    except (OverflowError, ValueError, OSError):
        when = "-"
    return CommitInfo(commit_id, commit_host(obj) or "unknown", when)


def describe(state: MergeState) -> list[ConflictInfo]:
    """The conflicts of the merge, in path order, numbered from 1."""
    return [ConflictInfo(i, state.files[p]) for i, p in enumerate(sorted(state.files), 1)]


def default_message(theirs: CommitInfo) -> str:
    return f"Merge {theirs.short} from {theirs.host}"


def folder_bytes(repo: Repository, path: str) -> tuple[bytes | None, str]:
    """What the folder holds at ``path``: its bytes, or None and what is there instead."""
    disk = disk_path(repo.require_worktree(), path)
    if os.path.islink(disk):
        return None, f"a symlink to '{os.readlink(disk)}'"
    if os.path.isdir(disk):
        return None, "a folder"
    if not os.path.lexists(disk):
        return None, "not in the folder (deleted)"
    if not os.path.isfile(disk):
        return None, "not a regular file"
    if os.path.getsize(disk) > READ_LIMIT:
        return None, "a large file; no markers are shown"
    with open(disk, "rb") as f:
        return f.read(), ""


def has_markers(data: bytes) -> bool:
    return any(line.startswith(MARKERS) for line in data.splitlines())


# -- the editor --------------------------------------------------------------------------------


def editor_command(editor: str | None) -> list[str]:
    text = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"cannot read the editor command {text!r}: {exc}") from None
    if not argv:
        raise UsageError("the editor command is empty; set EDITOR")
    return argv


def run_editor(argv: list[str]) -> int:
    """Run the editor on the terminal; Ctrl-C belongs to it meanwhile (as git does)."""
    in_main = threading.current_thread() is threading.main_thread()
    # Ignore Ctrl-C before the editor starts, so none can slip in between; the
    # editor itself gets the default disposition back (restore_signals).
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        try:
            proc = subprocess.Popen(argv, preexec_fn=_default_sigint)
        except OSError as exc:
            raise StoppedError(
                f"cannot run the editor '{argv[0]}': {exc.strerror or exc}"
            ) from None
        return proc.wait()
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def edit(repo: Repository, path: str, editor: str | None) -> tuple[Undo, bool]:
    """Run the editor on ``path``; returns its undo and whether the file changed."""
    disk = edit_target(repo, path)
    argv = editor_command(editor)
    undo = save_conflict(repo, path, "edit")
    code = run_editor([*argv, disk])
    if code != 0:
        raise StoppedError(f"the editor exited with status {code}; '{path}' was not marked")
    return undo, changed_since(repo, undo.saved[0])
