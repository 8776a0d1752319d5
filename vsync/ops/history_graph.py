"""Questions about the commit graph that do not depend on clocks."""

from __future__ import annotations

from dulwich.objects import Commit

from vsync.errors import DamagedRepository
from vsync.model.repository import Repository


def is_ancestor(repo: Repository, ancestor: bytes, tip: bytes) -> bool:
    """True if ``ancestor`` is ``tip`` or reachable from it through parents.

    A plain walk (no commit-time pruning), so clock skew between machines
    cannot give a wrong answer.
    """
    if ancestor == tip:
        return True
    store = repo.git.object_store
    seen = {tip}
    stack = [tip]
    while stack:
        oid = stack.pop()
        try:
            commit = store[oid]
        except KeyError:
            raise DamagedRepository(f"commit {oid.decode()} is missing") from None
        if not isinstance(commit, Commit):
            raise DamagedRepository(f"object {oid.decode()} should be a commit")
        for parent in commit.parents:
            if parent == ancestor:
                return True
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return False
