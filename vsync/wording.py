"""Counted nouns for every line vsync prints: one helper, one style.

A count is always followed by its noun in the right number, never "file" and "(s)":
``plural(1, "file")`` is "1 file", ``plural(2, "file")`` "2 files" and
``plural(0, "copy", "copies")`` "0 copies". Summary lines of commands that
change the folder say what they wrote the same way, with
:func:`written_deleted`: "3 files written, 1 deleted".
"""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and ``noun``, in the plural (``nouns``, else ``noun + "s"``) unless ``n`` is 1."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {nouns if nouns is not None else noun + 's'}"


def written_deleted(written: int, deleted: int) -> str:
    """What a command did to the folder: "1 file written, 0 deleted"."""
    return f"{plural(written, 'file')} written, {deleted} deleted"
