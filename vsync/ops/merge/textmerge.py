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
marker, so every marker starts a line.

A file added on both sides with different text has no base: it is merged as
git does, with an empty base, and the conflict regions are then narrowed by
a two-way diff of ours against theirs (merge3's ``reprocess``), so only the
lines that differ are marked and the lines both sides share appear once.
Such regions have an empty base block.

:func:`merge_union` is "keep both" (``git merge-file --union``): the merged
text where each conflict region holds ours' lines, then theirs', without
markers; lines both sides share inside a region appear once.
"""

from __future__ import annotations

from collections.abc import Iterator
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


_Conflict = tuple[str, int | None, int | None, int, int, int, int]


def _regions(
    b: list[bytes], a: list[bytes], t: list[bytes], narrow: bool
) -> Iterator[tuple[str, list[bytes], list[bytes], list[bytes]]]:
    """Each region as (kind, ours, base, theirs); kind is "clean" or "conflict".

    ``narrow``: conflict regions are narrowed by a two-way diff of ours and theirs
    (their base block is then empty).
    """
    m3 = Merge3(b, a, t)
    regions = m3.reprocess_merge_regions(m3.merge_regions()) if narrow else m3.merge_regions()
    for region in regions:
        what = region[0]
        if what == "unchanged":
            yield "clean", b[region[1] : region[2]], [], []
        elif what in ("a", "same"):
            yield "clean", a[region[1] : region[2]], [], []
        elif what == "b":
            yield "clean", t[region[1] : region[2]], [], []
        elif what == "conflict":
            _, z1, z2, a1, a2, b1, b2 = cast("_Conflict", region)
            base = b[z1:z2] if z1 is not None and z2 is not None else []
            yield "conflict", a[a1:a2], base, t[b1:b2]
        else:  # pragma: no cover - merge3 yields only the kinds above
            raise ValueError(f"unknown merge3 region {what!r}")


def _marked(
    b: list[bytes], a: list[bytes], t: list[bytes], labels: MarkerLabels, narrow: bool
) -> TextMerge:
    nl = _newline(a)
    out: list[bytes] = []
    conflicts = 0
    for kind, ours, base, theirs in _regions(b, a, t, narrow):
        if kind == "clean":
            out.extend(ours)
        else:
            conflicts += 1
            _conflict(out, ours, base, theirs, labels, nl)
    return TextMerge(b"".join(out), conflicts)


def merge_text(base: bytes, ours: bytes, theirs: bytes, labels: MarkerLabels) -> TextMerge:
    """Three-way line merge; conflict regions are written with markers."""
    return _marked(split_lines(base), split_lines(ours), split_lines(theirs), labels, False)


def merge_added(ours: bytes, theirs: bytes, labels: MarkerLabels) -> TextMerge:
    """Both sides added different text (no base): only the lines that differ are marked."""
    return _marked([], split_lines(ours), split_lines(theirs), labels, True)


def merge_union(base: bytes, ours: bytes, theirs: bytes) -> bytes:
    """ "Keep both": the merge with ours' then theirs' lines in each conflict region."""
    a = split_lines(ours)
    nl = _newline(a)
    out: list[bytes] = []
    for kind, o, _base, t in _regions(split_lines(base), a, split_lines(theirs), True):
        if kind == "clean":
            out.extend(o)
        else:
            _block(out, o, nl)
            out.extend(t)
    return b"".join(out)
