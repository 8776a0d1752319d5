"""Small output helpers shared by the command modules.

Names, messages and a peer's words are escaped where they are printed, with
:mod:`vsync.ui.escape` (re-exported here): ``quote_path`` for paths,
``escape_text`` for messages and other free text, ``one_line`` for
diagnostics. ``warn`` and ``info`` apply ``one_line`` themselves.
"""

from __future__ import annotations

import sys

from vsync.ui.escape import escape_text, one_line, quote_path

__all__ = ["escape_text", "info", "interactive", "one_line", "quote_path", "short", "warn"]


def warn(message: str) -> None:
    print(f"vsync: warning: {one_line(message)}", file=sys.stderr)


def info(message: str) -> None:
    print(one_line(message), file=sys.stderr)


def interactive() -> bool:
    """Both stdin and stdout are a terminal (the full-screen UIs run only then)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def short(oid: bytes | None, n: int = 10) -> str:
    return oid.decode("ascii")[:n] if oid else "-"
