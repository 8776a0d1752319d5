"""Temporary files a live writer holds an flock on, and the clean-up that never takes them.

The scheme (docs/format.md, "Temporary files"), used for temp chunk packs
(``chunks/*.vpk.tmp``) and received git packs (``incoming/in-*.pack``):

- a writer creates its file (``O_EXCL``) and takes an exclusive flock on it
  while holding a *shared* flock on the folder's ``temp.lock``
  (:func:`create_locked`), and keeps its flock until the file is renamed or
  deleted: the kernel drops it if the writer dies;
- clean-up holds ``temp.lock`` *exclusively* while it lists the folder and
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
def creation_guard(directory: Path, how: int) -> Iterator[None]:
    """A lock on ``directory``'s ``temp.lock``: shared (``fcntl.LOCK_SH``) while a
    writer creates and locks a temp file, exclusive while clean-up looks for
    abandoned ones (so it never finds a file between its creation and its lock)."""
    try:
        fd = os.open(directory / CREATION_GUARD, os.O_RDWR | os.O_CREAT, 0o644)
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


def create_locked(path: Path, fault: str | None = None) -> io.FileIO:
    """Create ``path`` (it must not exist) and hold an exclusive flock on it, as one
    step for clean-up (module docstring). ``fault``: a fault point between the two."""
    with creation_guard(path.parent, fcntl.LOCK_SH):
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
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass  # a live writer owns it, or it was renamed or removed meanwhile
    os.close(fd)
    return None


def abandoned(directory: Path, is_temp: Callable[[str], bool]) -> list[tuple[str, int]]:
    """``(name, locked descriptor)`` of each file in ``directory`` that ``is_temp``
    names and no live writer holds. The caller acts on each, then closes its
    descriptor (releasing the flock only after the file is renamed or deleted)."""
    found: list[tuple[str, int]] = []
    if not directory.is_dir():
        return found
    with creation_guard(directory, fcntl.LOCK_EX):  # no temp file is created meanwhile
        for name in sorted(os.listdir(directory)):
            if is_temp(name):
                fd = lock_abandoned(directory / name)
                if fd is not None:
                    found.append((name, fd))
    return found
