"""Line merge of text files with merge3, keeping each line's own ending.

Lines are split after ``\\n``, ``\\r\\n`` or ``\\r`` and keep their ending, so
a file with CRLF endings stays CRLF. A change on one side only, or the same
change on both, merges cleanly; changes that overlap make a conflict region,
written as::

    <<<<<<< ours (HOST COMMIT10)
    our lines
    ||||||| base (COMMIT10)
    the base's lines
    =======
    their lines
    >>>>>>> theirs (HOST COMMIT10)

Marker lines end with the line ending of ours' first line (``\\n`` if ours is
empty). A block whose last line has no line ending gets one before the next
marker, so every marker starts a line. A file added on both sides with
different text (no base) is one conflict region holding each whole side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from merge3 import Merge3


@dataclass(frozen=True)
class MarkerLabels:
    ours: str  # "ours (HOST COMMIT10)"
    base: str  # "base (COMMIT10)"
    theirs: str  # "theirs (HOST COMMIT10)"


@dataclass(frozen=True)
class TextMerge:
    data: bytes
    conflicts: int  # conflict regions; 0 means merged cleanly

    @property
    def clean(self) -> bool:
        return self.conflicts == 0


def split_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _newline(lines: list[bytes]) -> bytes:
    if lines:
        first = lines[0]
        if first.endswith(b"\r\n"):
            return b"\r\n"
        if first.endswith(b"\r"):
            return b"\r"
    return b"\n"


def _block(out: list[bytes], lines: list[bytes], nl: bytes) -> None:
    out.extend(lines)
    if lines and not lines[-1].endswith((b"\n", b"\r")):
        out.append(nl)


def _conflict(
    out: list[bytes],
    ours: list[bytes],
    base: list[bytes],
    theirs: list[bytes],
    labels: MarkerLabels,
    nl: bytes,
) -> None:
    out.append(b"<<<<<<< " + labels.ours.encode("utf-8") + nl)
    _block(out, ours, nl)
    out.append(b"||||||| " + labels.base.encode("utf-8") + nl)
    _block(out, base, nl)
    out.append(b"=======" + nl)
    _block(out, theirs, nl)
    out.append(b">>>>>>> " + labels.theirs.encode("utf-8") + nl)


def merge_text(base: bytes, ours: bytes, theirs: bytes, labels: MarkerLabels) -> TextMerge:
    """Three-way line merge; conflict regions are written with markers."""
    b, a, t = split_lines(base), split_lines(ours), split_lines(theirs)
    nl = _newline(a)
    out: list[bytes] = []
    conflicts = 0
    for region in Merge3(b, a, t).merge_regions():
        what = region[0]
        if what == "unchanged":
            out.extend(b[region[1] : region[2]])
        elif what in ("a", "same"):
            out.extend(a[region[1] : region[2]])
        elif what == "b":
            out.extend(t[region[1] : region[2]])
        elif what == "conflict":
            _, z1, z2, a1, a2, b1, b2 = cast("tuple[str, int, int, int, int, int, int]", region)
            conflicts += 1
            _conflict(out, a[a1:a2], b[z1:z2], t[b1:b2], labels, nl)
        else:  # pragma: no cover - merge3 yields only the kinds above
            raise ValueError(f"unknown merge3 region {what!r}")
    return TextMerge(b"".join(out), conflicts)


def conflict_whole(ours: bytes, theirs: bytes, labels: MarkerLabels) -> TextMerge:
    """Both sides added different text (no base): one region holding each side."""
    a, t = split_lines(ours), split_lines(theirs)
    out: list[bytes] = []
    _conflict(out, a, [], t, labels, _newline(a))
    return TextMerge(b"".join(out), 1)
