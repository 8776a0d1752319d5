"""Bringing a working folder along when its branch moves by sync.

Only the paths that differ between the old and the new commit are touched,
so uncommitted edits elsewhere stay as they are; an uncommitted edit to a
path the update must change stops it (nothing is changed) rather than being
overwritten.
"""

from __future__ import annotations

from collections.abc import Callable

from vsync.errors import StoppedError, UncommittedChanges
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.checkout import ApplyResult, apply_snapshot
from vsync.ops.status import status


def _flat(repo: Repository, commit: bytes | None) -> FlatMap:
    if commit is None:
        return {}
    store = repo.git.object_store
    return flatten(store, commit_tree(store, commit))


def changed_paths(old: FlatMap, new: FlatMap) -> list[str]:
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def fast_forward_worktree(
    repo: Repository, old: bytes | None, new: bytes, warn: Callable[[str], None]
) -> ApplyResult:
    """Apply the change old -> new to the working folder, keeping other local edits."""
    before, after = _flat(repo, old), _flat(repo, new)
    scope = changed_paths(before, after)
    if not scope:
        return ApplyResult()
    target = {p: e for p, e in after.items() if p in set(scope)}
    try:
        return apply_snapshot(repo, target, scope, False, warn)
    except UncommittedChanges as exc:
        raise UncommittedChanges(
            f"{exc}; the incoming changes touch files you edited and have not committed "
            "(commit them, then pull again to merge)"
        ) from None


def update_after_push(repo: Repository, old: bytes | None, new: bytes) -> None:
    """Like git's updateInstead: a pushed-to working folder follows when it is clean."""
    warnings: list[str] = []
    result = status(repo, warnings.append)
    if not result.clean:
        raise StoppedError(
            "the remote's working folder has uncommitted changes; commit them there first "
            "(or push to a bare repository)"
        )
    fast_forward_worktree(repo, old, new, warnings.append)
