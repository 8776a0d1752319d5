"""Moving the working folder along with the branch when it fast-forwards.

Only the paths that differ between the old and the new commit are touched,
so uncommitted edits elsewhere stay as they are; an uncommitted edit to a
path the update must change stops it (nothing is changed) rather than being
overwritten.
"""

from __future__ import annotations

from collections.abc import Callable

from vsync.errors import UncommittedChanges
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.checkout import ApplyResult, apply_snapshot


def flat_of(repo: Repository, commit: bytes | None) -> FlatMap:
    if commit is None:
        return {}
    return flatten(repo.gitdb, commit_tree(repo.gitdb, commit))


def changed_paths(old: FlatMap, new: FlatMap) -> list[str]:
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def fast_forward_worktree(
    repo: Repository, old: bytes | None, new: bytes, warn: Callable[[str], None]
) -> ApplyResult:
    """Apply the change old -> new to the working folder, keeping other local edits."""
    before, after = flat_of(repo, old), flat_of(repo, new)
    scope = changed_paths(before, after)
    if not scope:
        return ApplyResult()
    wanted = set(scope)
    target = {p: e for p, e in after.items() if p in wanted}
    try:
        return apply_snapshot(repo, target, scope, False, warn)
    except UncommittedChanges as exc:
        raise UncommittedChanges(
            f"{exc}; the incoming changes touch files you edited and have not committed "
            "(commit them, then pull again to merge)"
        ) from None
