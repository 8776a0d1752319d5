"""Three-way merge: plan, apply, record (see docs/user-guide.md and docs/format.md).

- :mod:`.base`: merge bases from the commit graph, the (virtual) base snapshot,
  :func:`prepare_merge` (plan a merge of two commits of a repository).
- :mod:`.plan`: the pure planner over three flat maps: actions with reasons,
  conflict kinds and their git unmerged codes.
- :mod:`.textmerge`, :mod:`.renames`, :mod:`.naming`, :mod:`.content`: its parts.
- :mod:`.apply`: write a plan into the working folder; the merge commit's tree.
- :mod:`.state`: the merge state record in ``.vsync/merge/``.
- :mod:`.resolve`: ``resolve`` per path and ``abort``.
- :mod:`.undoable`: resolutions saved so they can be taken back (the conflict shell).
- :mod:`.integrate`: bring a commit into the branch (up to date, fast-forward or
  merge and commit), for ``vsync merge REV``, ``pull`` and ``sync``. Not imported
  here (:mod:`vsync.ops.commit`, which it uses, imports this package).

Typical use (under the caller's own checks)::

    with repo.ingester() as ingester:
        plan = prepare_merge(repo, repo.head(), theirs, ingester)
    outcome = apply_merge(repo, plan)         # saves the merge state first
    if plan.clean:
        tree_id, trees = build_merge_tree(plan)
        ... make_commit(repo, tree_id, [ours, theirs], msg); advance_branch(...)
        MergeState.load(repo).clear()
"""

from vsync.ops.merge.apply import ApplyOutcome, apply_merge, build_merge_tree
from vsync.ops.merge.base import merge_bases, prepare_merge
from vsync.ops.merge.content import MemoryContent, RepoContent, is_text
from vsync.ops.merge.plan import (
    ACTION_KINDS,
    CONFLICT_KINDS,
    Labels,
    MergePlan,
    Side,
    plan_merge,
)
from vsync.ops.merge.resolve import abort, resolve
from vsync.ops.merge.state import MergeState, PathState, status_codes

__all__ = [
    "ACTION_KINDS",
    "CONFLICT_KINDS",
    "ApplyOutcome",
    "Labels",
    "MemoryContent",
    "MergePlan",
    "MergeState",
    "PathState",
    "RepoContent",
    "Side",
    "abort",
    "apply_merge",
    "build_merge_tree",
    "is_text",
    "merge_bases",
    "plan_merge",
    "prepare_merge",
    "resolve",
    "status_codes",
]
