"""``vsync diff --stat``: how much each changed path changed, as git's ``--stat`` counts it.

A text diff counts its added and removed lines (the ``+`` and ``-`` lines of
its hunks); a binary diff has no line counts, only the two sizes; an exec-bit
change counts nothing. The totals add the text counts up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vsync.ops.diff import DiffKind, FileDiff


@dataclass(frozen=True)
class FileStat:
    """One path of ``diff --stat``: its status letter (A, D, M, T), kind and counts."""

    path: str
    status: str
    kind: DiffKind
    insertions: int | None  # None for binary
    deletions: int | None
    old_size: int | None  # None for an absent side
    new_size: int | None


@dataclass(frozen=True)
class DiffStat:
    files: list[FileStat]

    @property
    def insertions(self) -> int:
        return sum(f.insertions or 0 for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions or 0 for f in self.files)


def _status(fd: FileDiff) -> str:
    if fd.old is None:
        return "A"
    if fd.new is None:
        return "D"
    return "T" if fd.old.is_link != fd.new.is_link else "M"


def file_stat(fd: FileDiff) -> FileStat:
    """The counts of one path's diff."""
    plus = minus = 0
    if fd.kind is DiffKind.TEXT:
        for line in fd.lines:
            if line.startswith("+"):
                plus += 1
            elif line.startswith("-"):
                minus += 1
    counted = fd.kind is not DiffKind.BINARY
    return FileStat(
        path=fd.path,
        status=_status(fd),
        kind=fd.kind,
        insertions=plus if counted else None,
        deletions=minus if counted else None,
        old_size=fd.old_size,
        new_size=fd.new_size,
    )


def diff_stat(diffs: Iterable[FileDiff]) -> DiffStat:
    return DiffStat([file_stat(fd) for fd in diffs])
