"""Questions about the commit graph that do not depend on clocks."""

from __future__ import annotations

from vsync.model.repository import Repository


def is_ancestor(repo: Repository, ancestor: bytes, tip: bytes) -> bool:
    """True if ``ancestor`` is ``tip`` or reachable from it through parents.

    A plain walk (no commit-time pruning), so clock skew between machines
    cannot give a wrong answer.
    """
    if ancestor == tip:
        return True
    db = repo.gitdb
    seen = {tip}
    stack = [tip]
    while stack:
        commit = db.commit(stack.pop())
        for parent in commit.parents:
            if parent == ancestor:
                return True
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return False
