"""Writing a tree that holds case twins (``A.txt`` and ``a.txt``) into a folder on a file
system that folds case (NTFS, APFS and HFS+ by default), where both would be one file.

:func:`folds_case` asks the file system: does the control folder ``.vsync`` also
answer to ``.VSYNC``? (``VSYNC_ASSUME_CASE_FOLDING=1`` says yes without asking:
the test suite runs on Linux, whose file systems do not fold case.)
:func:`keep_case_twins` keeps both files: the first of each pair (in sorted
order) at its path, every later one under a conflict-copy name
(:mod:`vsync.ops.merge.naming`: ``a.conflict-<host>-<date>.txt``), and says so
in one warning per file. Folders that differ only by case are left as they are
(their files merge into one folder; names inside still differ).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from vsync.model.paths import CONTROL_NAME
from vsync.model.portability import case_twins, folded_key
from vsync.model.snapshot import FlatMap
from vsync.ops.merge.naming import conflict_copy_name

ASSUME_ENV = "VSYNC_ASSUME_CASE_FOLDING"


def folds_case(root: Path) -> bool:
    """Whether the file system holding ``root`` takes names that differ only by case for
    one name (``.vsync`` and ``.VSYNC`` are the same folder)."""
    if os.environ.get(ASSUME_ENV) == "1":
        return True
    try:
        st = os.lstat(root / CONTROL_NAME)
        other = os.lstat(root / CONTROL_NAME.upper())
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def keep_case_twins(
    target: FlatMap, host: str, warn: Callable[[str], None]
) -> tuple[FlatMap, dict[str, str]]:
    """``target`` with every file that is the case twin of an earlier one moved to a
    conflict-copy name; also the moves (path -> copy). Folder twins are not moved."""
    twins = {
        path: first
        for path, (first, _by) in case_twins(target).items()
        if "/" not in path[len(first) :]  # the names themselves, not a folder above
    }
    if not twins:
        return target, {}
    taken = {folded_key(p) for p in target}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved: dict[str, str] = {}
    out = dict(target)
    for path, first in sorted(twins.items()):
        copy = conflict_copy_name(path, host, stamp, lambda p: folded_key(p) in taken)
        taken.add(folded_key(copy))
        out[copy] = out.pop(path)
        moved[path] = copy
        warn(
            f"'{path}' and '{first}' are one name on this file system (it folds case): "
            f"'{path}' was written as '{copy}'"
        )
    return out, moved
