"""``vsync revert-to REV``: go back to REV's content with a new commit.

History is never rewritten: a new commit on top of HEAD whose tree is
exactly REV's tree, message ``Revert to <10 hex> (<REV's subject>)``, reflog
line ``revert-to: <message>``. The working folder becomes REV's content
first (as ``checkout`` does it, the whole folder: the safety rule of
:func:`vsync.ops.checkout.apply_snapshot` applies, so an uncommitted edit in
the way stops it with nothing changed). The commit is made from REV's tree,
not from a scan, so untracked files in the folder are not swept into it.
``vsync undo`` takes it back like a merge: the branch returns to the
previous commit and the paths the revert changed get their earlier content.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsync.errors import StoppedError, UncommittedChanges
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import flatten
from vsync.ops.checkout import Warn, apply_snapshot
from vsync.ops.commit import advance_branch, make_commit
from vsync.ops.log import entry_of
from vsync.ops.merge.integrate import require_no_merge


@dataclass
class RevertResult:
    source: bytes  # the commit whose content was brought back
    parent: bytes  # HEAD before
    commit_id: bytes | None  # the new commit; None when HEAD already had that content
    message: str = ""
    written: int = 0
    deleted: int = 0


def revert_to(
    repo: Repository, rev: str, warn: Warn, commit_id: bytes | None = None
) -> RevertResult:
    """Commit REV's tree on top of HEAD and make the folder equal it."""
    repo.require_worktree()
    require_no_merge(repo)
    source = commit_id if commit_id is not None else resolve(repo, rev)
    db = repo.gitdb
    src = db.commit(source)
    subject = entry_of(src).subject
    message = f"Revert to {source.decode('ascii')[:10]} ({subject})"
    with repo.lock(exclusive=True):
        head = repo.head()
        if head is None:
            raise StoppedError("there are no commits yet: nothing to revert to")
        if db.commit(head).tree == src.tree:
            return RevertResult(source, head, None)
        target = flatten(db, src.tree)
        try:
            applied = apply_snapshot(repo, target, [""], False, warn, whole_folder=True)
        except UncommittedChanges as exc:
            raise exc.advising(
                "commit them first (then 'vsync revert-to' again: the commit stays in history)"
            ) from None
        c = make_commit(repo, src.tree, [head], message)
        db.add([c])
        advance_branch(repo, head, c.id, f"revert-to: {message}")
    return RevertResult(source, head, c.id, message, len(applied.written), len(applied.deleted))
