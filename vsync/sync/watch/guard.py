"""The mass-change guard's one place in the watcher.

The guard (``vsync/ops/mass_change.py``) makes the
commit inside ``sync`` and every ``pull`` refuse a step that deletes or
overwrites too many tracked files, raising ``MassChangeRefused`` before anything
is written, unless the change is allowed. A watcher never allows one: the cycle
passes :func:`commit_options` to ``commit`` and :func:`pull_options` to ``pull``
and catches :data:`REFUSALS`; a refusal pauses the watcher (event ``paused``
with the change described, status line ``paused: ...``) until the user runs
``vsync sync --allow-mass-change`` and starts the watcher again.

This module is the only place the watcher knows of the guard.
"""

from __future__ import annotations

from typing import Any

from vsync.model.repository import Repository
from vsync.ops.mass_change import MassChangeRefused, checker

REFUSALS: tuple[type[BaseException], ...] = (MassChangeRefused,)


def commit_options(repo: Repository) -> dict[str, Any]:
    """Keyword arguments the watcher passes to ``commit``."""
    return {"check": checker(repo.config, False, "commit")}


def pull_options() -> dict[str, Any]:
    """Keyword arguments the watcher passes to ``pull``."""
    return {"allow_mass_change": False}


def describe(refusal: BaseException) -> str:
    """The one line the watcher shows when it pauses: the change, described."""
    change = getattr(refusal, "change", None)
    describe_change = getattr(change, "describe", None)
    if callable(describe_change):
        return str(describe_change())
    return str(refusal)
