"""A pushed-to working folder follows its branch, like git's updateInstead."""

from __future__ import annotations

from vsync.errors import StoppedError
from vsync.model.repository import Repository
from vsync.ops.fastforward import fast_forward_worktree
from vsync.ops.status import status


def update_after_push(repo: Repository, old: bytes | None, new: bytes) -> None:
    """Bring the folder from ``old`` to ``new`` when it has no uncommitted changes."""
    warnings: list[str] = []
    result = status(repo, warnings.append)
    if not result.clean:
        raise StoppedError(
            "the remote's working folder has uncommitted changes; commit them there first "
            "(or push to a bare repository)"
        )
    fast_forward_worktree(repo, old, new, warnings.append)
