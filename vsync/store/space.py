"""A full disk is not damage: telling it apart, and saying how much space there is.

The OS says "no space" with ``ENOSPC`` (or ``EDQUOT`` over a quota); SQLite
says it with ``SQLITE_FULL`` ("database or disk is full"), raised as
``sqlite3.OperationalError``. Either becomes :class:`vsync.errors.DiskFull`
(exit 1), never :class:`vsync.errors.DamagedRepository`, and nothing is set
aside for it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from vsync.errors import DiskFull

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says there is no space left (OS or SQLite)."""
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False


def free_bytes(path: Path | str) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``path``
    (its nearest existing folder); None if that cannot be told."""
    here = Path(path)
    for candidate in (here, *here.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def disk_full(exc: BaseException, writing: str, where: Path | str | None = None) -> DiskFull:
    """The :class:`DiskFull` for ``exc``: ``writing`` names what was being written,
    ``where`` (default: the OSError's file name) is measured for free space."""
    if where is None and isinstance(exc, OSError) and exc.filename:
        where = os.fsdecode(exc.filename)
    return DiskFull(writing, free=None if where is None else free_bytes(where))


def require_free(where: Path, needed: int, writing: str) -> None:
    """DiskFull before anything is written if ``where`` has less than ``needed`` bytes free."""
    free = free_bytes(where)
    if free is not None and free < needed:
        raise DiskFull(writing, needed=needed, free=free)
