"""The mass-change guard's one place in the watcher.

The guard (issue 13, branch h/guard) makes ``commit``, ``pull`` and ``sync``
refuse a change that deletes or overwrites too many tracked files unless
``allow_mass_change`` is passed. A watcher never passes it: the cycle calls
the ops with :func:`op_options` and catches :data:`REFUSALS`; a refusal pauses
the watcher (event ``paused``, status line ``paused: ...``) until the user runs
``vsync sync --allow-mass-change`` and starts it again.

Until the guard is on main this module wires nothing: ``REFUSALS`` is empty
and :func:`op_options` adds no argument. Wiring it is the three lines marked
``GUARD:`` below and nothing else.
"""

from __future__ import annotations

from typing import Any

# GUARD: from vsync.ops.mass_change import MassChangeRefused
REFUSALS: tuple[type[BaseException], ...] = ()  # GUARD: (MassChangeRefused,)


def op_options() -> dict[str, Any]:
    """Keyword arguments the watcher passes to commit, pull and push."""
    return {}  # GUARD: {"allow_mass_change": False}


def describe(refusal: BaseException) -> str:
    """The one line the watcher shows when it pauses."""
    change = getattr(refusal, "change", None)
    describe_change = getattr(change, "describe", None)
    if callable(describe_change):
        return str(describe_change())
    return str(refusal)
