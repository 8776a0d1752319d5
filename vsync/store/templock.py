"""Temporary files a live writer holds an flock on, and the clean-up that never takes them.

The scheme (docs/format.md, "Temporary files and their locks"), used for temp chunk packs
(``chunks/*.vpk.tmp``) and received git packs (``incoming/in-*.pack``):

- a writer creates its file (``O_EXCL``) and takes an exclusive flock on it
  while holding a *shared* flock on a guard file (the folder's ``temp.lock``
  unless the caller names another)
  (:func:`create_locked`), and keeps its flock until the file is renamed or
  deleted: the kernel drops it if the writer dies;
- clean-up holds the guard *exclusively* while it lists the folder and
  tries each file's flock without waiting (:func:`lock_abandoned`), so it
  never finds a file between its creation and its flock, and takes only
  files no live writer holds; it then checks by inode that the name still
  names the file it locked (a writer may have renamed it meanwhile).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from vsync.store import faults

CREATION_GUARD = "temp.lock"


@contextlib.contextmanager
def creation_guard(guard: Path, how: int) -> Iterator[None]:
    """A lock on the guard file ``guard``: shared (``fcntl.LOCK_SH``) while a
    writer creates and locks a temp file, exclusive while clean-up looks for
    abandoned ones (so it never finds a file between its creation and its lock)."""
    try:
        fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        yield  # a folder nobody may write to: no writer can create a file in it either
        return
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


def default_guard(directory: Path) -> Path:
    return directory / CREATION_GUARD


def create_locked(path: Path, guard: Path | None = None, fault: str | None = None) -> io.FileIO:
    """Create ``path`` (it must not exist) and hold an exclusive flock on it, as one
    step for clean-up (module docstring). ``guard``: the guard file (default: the
    folder's ``temp.lock``); ``fault``: a fault point between the two steps."""
    with creation_guard(guard or default_guard(path.parent), fcntl.LOCK_SH):
        f = open(path, "xb", buffering=0)  # noqa: SIM115 - the caller closes it
        try:
            if fault is not None:
                faults.point(fault)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
    return f


def lock_abandoned(path: Path) -> int | None:
    """An open, exclusively locked descriptor of ``path`` if no writer holds it and
    it is still the file of that name; else None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:  # gone meanwhile, or not ours to touch (a read-only folder)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass  # a live writer owns it, or it was renamed or removed meanwhile
    os.close(fd)
    return None


def abandoned(
    directory: Path, is_temp: Callable[[str], bool], guard: Path | None = None
) -> list[tuple[str, int]]:
    """``(name, locked descriptor)`` of each file in ``directory`` that ``is_temp``
    names and no live writer holds (``guard`` as for :func:`create_locked`). The
    caller acts on each, then closes its descriptor (releasing the flock only
    after the file is renamed or deleted)."""
    found: list[tuple[str, int]] = []
    if not directory.is_dir():
        return found
    # no temp file is created meanwhile
    with creation_guard(guard or default_guard(directory), fcntl.LOCK_EX):
        for name in sorted(os.listdir(directory)):
            if is_temp(name):
                fd = lock_abandoned(directory / name)
                if fd is not None:
                    found.append((name, fd))
    return found
