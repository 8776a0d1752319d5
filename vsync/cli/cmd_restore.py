"""Placeholder registration; filled in by the command family's implementation."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    pass
