"""``vsync restore PATH... --source REV``: bring paths back to how a commit holds them.

A path may be a file or a folder (everything under it; ``""`` is the whole
folder). The branch does not move. Untracked files are left alone unless they
sit where the source needs to write; the safety rule of
:func:`vsync.ops.checkout.apply_snapshot` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsync.errors import PathNotInRevision
from vsync.model.paths import check_repo_path
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.checkout import Warn, apply_snapshot, normalise_scope


@dataclass
class RestoreResult:
    source: bytes
    written: int
    deleted: int


def restore(
    repo: Repository, paths: list[str], source: str, force: bool, warn: Warn
) -> RestoreResult:
    """Write ``source``'s version of ``paths`` into the working folder."""
    repo.require_worktree()
    for path in paths:
        if path:
            check_repo_path(path)
    commit_id = resolve(repo, source)
    store = repo.git.object_store
    tree = commit_tree(store, commit_id)
    scope = normalise_scope(paths)
    target: FlatMap = {}
    for path in scope:
        found = flatten(store, tree, path)
        if not found and path:  # the root is in every revision, even an empty one
            raise PathNotInRevision(path or ".", source)
        target.update(found)
    result = apply_snapshot(repo, target, scope, force, warn)
    return RestoreResult(commit_id, len(result.written), len(result.deleted))
