"""``.vsyncignore``: gitignore syntax (matched with dulwich's gitignore engine).

Only the file at the top of the working folder is read; ``.vsync/`` is
always excluded.
"""

from __future__ import annotations

from pathlib import Path

from dulwich.ignore import IgnoreFilter, read_ignore_patterns

IGNORE_FILE = ".vsyncignore"


class Ignore:
    def __init__(self, root: Path) -> None:
        patterns: list[bytes] = []
        try:
            with open(root / IGNORE_FILE, "rb") as f:
                patterns = list(read_ignore_patterns(f))
        except FileNotFoundError:
            pass
        self._filter = IgnoreFilter(patterns) if patterns else None

    def ignored(self, path: str, is_dir: bool) -> bool:
        if self._filter is None:
            return False
        return bool(self._filter.is_ignored(path + "/" if is_dir else path))
