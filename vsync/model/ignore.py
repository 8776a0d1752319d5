"""``.vsyncignore``: gitignore syntax (matched with dulwich's gitignore engine).

Only the file at the top of the working folder is read; ``.vsync/`` is
always excluded. dulwich's engine is imported only when the file holds
patterns, so a folder without them never loads it.
"""

from __future__ import annotations

import io
from _blake2 import blake2b  # not hashlib, which loads OpenSSL: a clean status needs only this
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dulwich.ignore import IgnoreFilter

IGNORE_FILE = ".vsyncignore"


def _fingerprint(source: bytes | None) -> bytes:
    return blake2b(b"-" if source is None else b"+" + source, digest_size=16).digest()


def fingerprint_of(root: Path) -> bytes | None:
    """:attr:`Ignore.fingerprint` of ``root``'s rules, without compiling them (None: the
    file cannot be read)."""
    try:
        with open(root / IGNORE_FILE, "rb") as f:
            return _fingerprint(f.read())
    except FileNotFoundError:
        return _fingerprint(None)
    except OSError:
        return None


class Ignore:
    def __init__(self, root: Path) -> None:
        self._filter: IgnoreFilter | None = None
        try:
            with open(root / IGNORE_FILE, "rb") as f:
                source: bytes | None = f.read()
        except FileNotFoundError:
            source = None
        # What the rules are made of (the stat cache's clean stamp keeps it).
        self.fingerprint = _fingerprint(source)
        if source and source.strip():
            from dulwich.ignore import IgnoreFilter, read_ignore_patterns

            patterns = list(read_ignore_patterns(io.BytesIO(source)))
            if patterns:
                self._filter = IgnoreFilter(patterns)

    @property
    def empty(self) -> bool:
        return self._filter is None

    def ignored(self, path: str, is_dir: bool) -> bool:
        if self._filter is None:
            return False
        return bool(self._filter.is_ignored(path + "/" if is_dir else path))
