"""``vsync restore PATH... --source REV``: bring paths back to how a commit holds them.

A path may be a file or a folder (everything under it; ``""`` is the whole
folder). The branch does not move. Untracked files are left alone unless they
sit where the source needs to write; the safety rule of
:func:`vsync.ops.checkout.apply_snapshot` applies.

``--as NEWPATH`` (:func:`restore_as`) writes the version beside the current
one under another name (a file, or a whole folder under a new folder name).
A NEWPATH that exists is refused (UsageError, exit 2) unless ``force``; even
then only content that is recorded in the repository is overwritten (the
safety rule, without its ``--force``), so ``--as`` never loses an edit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vsync.errors import PathNotInRevision, UncommittedChanges, UsageError
from vsync.model.paths import check_repo_path
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.checkout import Warn, apply_snapshot, normalise_scope
from vsync.ops.folder_writer import disk_path


@dataclass
class RestoreResult:
    source: bytes
    written: int
    deleted: int


def restore(
    repo: Repository,
    paths: list[str],
    source: str,
    force: bool,
    warn: Warn,
    commit_id: bytes | None = None,
) -> RestoreResult:
    """Write ``source``'s version of ``paths`` into the working folder.

    ``commit_id`` (from ``--at``) is used instead of resolving ``source``,
    which then only names the revision in messages.
    """
    repo.require_worktree()
    for path in paths:
        if path:
            check_repo_path(path)
    if commit_id is None:
        commit_id = resolve(repo, source)
    tree = commit_tree(repo.gitdb, commit_id)
    scope = normalise_scope(paths)
    target: FlatMap = {}
    for path in scope:
        found = flatten(repo.gitdb, tree, path)
        if not found and path:  # the root is in every revision, even an empty one
            raise PathNotInRevision(path or ".", source)
        target.update(found)
    result = apply_snapshot(repo, target, scope, force, warn)
    return RestoreResult(commit_id, len(result.written), len(result.deleted))


def restore_as(
    repo: Repository,
    path: str,
    new_path: str,
    source: str,
    force: bool,
    warn: Warn,
    commit_id: bytes | None = None,
) -> RestoreResult:
    """Write ``source``'s version of ``path`` (file or folder) as ``new_path``."""
    root = repo.require_worktree()
    if not new_path:
        raise UsageError("--as needs a new name inside the working folder, not its root")
    check_repo_path(new_path)
    if path:
        check_repo_path(path)
    if commit_id is None:
        commit_id = resolve(repo, source)
    found = flatten(repo.gitdb, commit_tree(repo.gitdb, commit_id), path)
    if not found:
        raise PathNotInRevision(path or ".", source)
    target: FlatMap = {}
    for p, entry in found.items():
        rest = p[len(path) :].lstrip("/") if path else p
        target[f"{new_path}/{rest}" if rest else new_path] = entry
    if os.path.lexists(disk_path(str(root), new_path)) and not force:
        raise UsageError(
            f"'{new_path}' already exists; pick another name, or add --force to replace it "
            "(only content recorded in the repository is ever replaced)"
        )
    try:
        result = apply_snapshot(repo, target, [new_path], False, warn)
    except UncommittedChanges as exc:
        raise exc.advising(
            "pick another name for --as (it never replaces content that is not recorded)"
        ) from None
    return RestoreResult(commit_id, len(result.written), len(result.deleted))
