"""dulwich's lock files, and breaking the ones a killed process left.

dulwich writes refs, packed-refs, pack indexes and config files through
``GitFile``: it creates ``X.lock`` with ``O_EXCL``, writes it and renames it
over ``X``. A process killed in between leaves ``X.lock`` behind, and every
later write of ``X`` fails (``FileLocked``) until it is removed.

So every such write in vsync runs through :func:`write_locked`, which holds
an exclusive flock on ``lockfiles.flock`` in the control folder meanwhile
(docs/format.md). Writers take turns on it for milliseconds; commit and
fetch, which share the repository lock, take it too. The kernel drops the
flock of a process that dies, so a lock file found while holding it was left
by a killed process: it is removed, with a warning naming it, and the write
is tried again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dulwich.file import FileLocked

from vsync.errors import notices
from vsync.model.lock import LOCK_TIMEOUT, RepoLock

GUARD = "lockfiles.flock"
_BREAKS = 4  # lock files one write may find (a ref, packed-refs, ...)

T = TypeVar("T")


def write_locked(control: Path, write: Callable[[], T]) -> T:
    """``write()`` (a dulwich write through lock files) under the lock-file guard of
    ``control``; a lock file it finds was left by a killed process and is broken."""
    with RepoLock(control / GUARD, True, LOCK_TIMEOUT, record=False):
        for _attempt in range(_BREAKS):
            try:
                return write()
            except FileLocked as exc:
                break_stale(control, os.fsdecode(exc.lockfilename))
        return write()


def guard(control: Path) -> RepoLock:
    """The lock-file guard itself, for work that removes lock files wholesale (gc, fsck)."""
    return RepoLock(control / GUARD, True, LOCK_TIMEOUT, record=False)


def break_stale(control: Path, lockfile: str) -> None:
    """Remove ``lockfile`` (the caller holds the guard) and say so on stderr."""
    path = Path(lockfile)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    try:
        shown: Path | str = path.relative_to(control)
    except ValueError:
        shown = lockfile
    notices().warning(
        "removed the stale lock file %s, left by a vsync process that was killed", shown
    )
