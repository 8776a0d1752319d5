"""Small output helpers shared by the command modules."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    print(f"vsync: warning: {message}", file=sys.stderr)


def info(message: str) -> None:
    print(message, file=sys.stderr)


def short(oid: bytes | None, n: int = 10) -> str:
    return oid.decode("ascii")[:n] if oid else "-"
