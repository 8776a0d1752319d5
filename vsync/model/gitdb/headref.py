"""A branch's commit read from its loose ref file, without dulwich.

For the clean-status fast path (:mod:`vsync.ops.status`): the answer is used
only to compare with the stat cache's clean stamp, so anything unusual (a
packed or symbolic ref, a damaged file) is "unknown" (None) and the caller
takes the full path through :class:`~vsync.model.gitdb.db.GitDB`, which
judges it.
"""

from __future__ import annotations

import os
from pathlib import Path

HEX = frozenset(b"0123456789abcdef")


def loose_ref(git_dir: Path, name: bytes) -> bytes | None:
    """The 40-hex-digit commit id the loose ref ``name`` holds, or None if unknown."""
    try:
        with open(os.path.join(git_dir, os.fsdecode(name)), "rb") as f:
            data = f.read(100)
    except OSError:
        return None
    value = data.rstrip(b"\n")
    if len(value) != 40 or not HEX.issuperset(value):
        return None
    return value
