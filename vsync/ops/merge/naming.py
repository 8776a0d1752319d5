"""Names of conflict copies: the other version of a path, written beside it.

When both versions of a path cannot share one file (a binary changed on both
sides, a symlink against a file, a file against a folder), one version stays
at the path and the other is written beside it as::

    <stem>.conflict-<host>-<yyyymmdd-hhmmss><ext>

- ``<ext>`` is the name's last suffix, dot included (``photo.jpg`` ->
  ``.jpg``; ``archive.tar.gz`` -> ``.gz``); a name without one (``README``,
  ``.bashrc``) gets none, and ``<stem>`` is then the whole name.
- ``<host>`` is the ``vsync-host`` header of the commit that version comes
  from, with every character other than ``A-Z a-z 0-9 . _ -`` replaced by
  ``-`` (``unknown`` when empty).
- ``<yyyymmdd-hhmmss>`` is that commit's time, in the time zone the commit
  records (the clock of the machine that made it).
- If the name is taken (by a path of any side, by the merge result, by
  another copy or by something in the working folder), ``-2``, ``-3``, ...
  is added before ``<ext>``.

Examples: ``photos/cat.jpg`` -> ``photos/cat.conflict-laptop-20240501-093000.jpg``;
``Makefile`` -> ``Makefile.conflict-laptop-20240501-093000``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import PurePosixPath

MAX_NAME = 255
_UNSAFE_HOST = re.compile(r"[^A-Za-z0-9._-]")


def safe_host(host: str) -> str:
    cleaned = _UNSAFE_HOST.sub("-", host).strip(".")
    return cleaned[:64] or "unknown"


def stamp_of(commit_time: int, tz_offset: int) -> str:
    """``yyyymmdd-hhmmss`` of a commit time in the commit's own time zone.

    A time no calendar can show (a forged commit) gives ``00000000-000000``.
    """
    try:
        return time.strftime("%Y%m%d-%H%M%S", time.gmtime(commit_time + tz_offset))
    except (OverflowError, ValueError, OSError):
        return "00000000-000000"


def _fit(stem: str, tail: str) -> str:
    """Shorten ``stem`` so that ``stem + tail`` is at most 255 bytes of UTF-8."""
    room = MAX_NAME - len(tail.encode("utf-8"))
    raw = stem.encode("utf-8")
    if len(raw) <= room:
        return stem + tail
    return raw[: max(room, 1)].decode("utf-8", "ignore") + tail


def conflict_copy_name(path: str, host: str, stamp: str, taken: Callable[[str], bool]) -> str:
    """The repository path for the conflict copy of ``path`` (see the module docstring)."""
    folder, _, name = path.rpartition("/")
    ext = PurePosixPath(name).suffix
    stem = name[: -len(ext)] if ext else name
    mark = f".conflict-{safe_host(host)}-{stamp}"
    n = 1
    while True:
        suffix = mark + (f"-{n}" if n > 1 else "") + ext
        candidate = _fit(stem, suffix)
        full = f"{folder}/{candidate}" if folder else candidate
        if not taken(full):
            return full
        n += 1
