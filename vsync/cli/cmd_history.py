"""Commands that read and restore history: log, diff, show, restore, checkout."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    pass
