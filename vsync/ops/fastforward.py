"""Moving the working folder along with the branch when it fast-forwards.

Only the paths that differ between the old and the new commit are touched,
so uncommitted edits elsewhere stay as they are; an uncommitted edit to a
path the update must change stops it (nothing is changed) rather than being
overwritten. ``vsync undo`` of a branch move puts the folder back the same way
(:func:`move_folder`).
"""

from __future__ import annotations

from vsync.errors import UncommittedChanges
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.checkout import ApplyResult, Warn, apply_snapshot
from vsync.ops.mass_change import Check


def _flat_of(repo: Repository, commit: bytes | None) -> FlatMap:
    if commit is None:
        return {}
    return flatten(repo.gitdb, commit_tree(repo.gitdb, commit))


def move_folder(
    repo: Repository,
    old: bytes | None,
    new: bytes,
    force: bool,
    warn: Warn,
    check: Check | None = None,
) -> ApplyResult:
    """Put every path that differs between ``old`` and ``new`` as ``new`` holds it;
    ``check(old's map, new's map)`` may refuse first (the mass-change guard)."""
    before, after = _flat_of(repo, old), _flat_of(repo, new)
    if check is not None:
        check(before, after)
    scope = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if not scope:
        return ApplyResult()
    wanted = set(scope)
    target = {p: e for p, e in after.items() if p in wanted}
    return apply_snapshot(repo, target, scope, force, warn)


def fast_forward_worktree(
    repo: Repository, old: bytes | None, new: bytes, warn: Warn, check: Check | None = None
) -> ApplyResult:
    """Apply the change old -> new to the working folder, keeping other local edits."""
    try:
        return move_folder(repo, old, new, False, warn, check)
    except UncommittedChanges as exc:
        raise UncommittedChanges(
            f"{exc}; the incoming changes touch files you edited and have not committed "
            "(commit them, then pull again to merge)"
        ) from None
