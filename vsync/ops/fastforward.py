"""Moving the working folder along with the branch when it fast-forwards.

Only the paths that differ between the old and the new commit are touched,
so uncommitted edits elsewhere stay as they are; an uncommitted edit to a
path the update must change stops it (nothing is changed) rather than being
overwritten. ``vsync undo`` of a branch move puts the folder back the same way
(:func:`move_folder`). A pushed-to working folder follows its branch, like git's
updateInstead (:func:`update_after_push`).
"""

from __future__ import annotations

from vsync.errors import StoppedError, UncommittedChanges
from vsync.model.prefill import Prefill
from vsync.model.repository import Repository
from vsync.model.snapshot import flatten_commit
from vsync.ops.checkout import ApplyResult, Warn, apply_snapshot
from vsync.ops.mass_change import Check
from vsync.ops.status import status


def move_folder(
    repo: Repository,
    old: bytes | None,
    new: bytes,
    force: bool,
    warn: Warn,
    check: Check | None = None,
    ready: Prefill | None = None,
) -> ApplyResult:
    """Put every path that differs between ``old`` and ``new`` as ``new`` holds it;
    ``check(old's map, new's map)`` may refuse first (the mass-change guard)."""
    before, after = flatten_commit(repo.gitdb, old), flatten_commit(repo.gitdb, new)
    if check is not None:
        check(before, after)
    scope = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if not scope:
        return ApplyResult()
    wanted = set(scope)
    target = {p: e for p, e in after.items() if p in wanted}
    return apply_snapshot(repo, target, scope, force, warn, ready=ready)


def fast_forward_worktree(
    repo: Repository,
    old: bytes | None,
    new: bytes,
    warn: Warn,
    check: Check | None = None,
    ready: Prefill | None = None,
) -> ApplyResult:
    """Apply the change old -> new to the working folder, keeping other local edits
    (``ready``: files the fetch has filled already, :mod:`vsync.model.prefill`)."""
    try:
        return move_folder(repo, old, new, False, warn, check, ready)
    except UncommittedChanges as exc:
        raise UncommittedChanges(
            f"{exc}; the incoming changes touch files you edited and have not committed "
            "(commit them, then pull again to merge)"
        ) from None


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
