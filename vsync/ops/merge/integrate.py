"""Bringing another commit into the branch: up to date, fast-forward, or merge.

Used by ``vsync merge REV`` and by ``pull``/``sync`` after a fetch. A clean
merge commits at once (two parents; the commit is made from the merge plan,
so unrelated uncommitted edits stay uncommitted). A merge with conflicts
leaves the merge state in ``.vsync/merge/`` and the conflicts in the folder
(markers, conflict copies) for ``vsync resolve`` and ``vsync commit``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from vsync.errors import StoppedError
from vsync.model.commits import commit_host
from vsync.model.prefill import Prefill
from vsync.model.repository import Repository
from vsync.ops.commit import advance_branch, make_commit
from vsync.ops.fastforward import fast_forward_worktree
from vsync.ops.history_graph import is_ancestor
from vsync.ops.hooks import run_hook
from vsync.ops.mass_change import Confirm, checker, guarded
from vsync.ops.merge.apply import apply_merge, build_merge_tree
from vsync.ops.merge.base import prepare_merge
from vsync.ops.merge.plan import MergePlan
from vsync.ops.merge.resolve import abort
from vsync.ops.merge.state import MergeState

Warn = Callable[[str], None]


class Integration(enum.Enum):
    """What bringing a commit in did; the value is the porcelain word."""

    UP_TO_DATE = "up-to-date"  # nothing to bring in
    AHEAD = "ahead"  # the branch already holds it, and more
    PLANNED = "planned"  # dry run: the plan only, nothing written
    FAST_FORWARD = "fast-forward"
    MERGED = "merged"  # a clean merge, committed
    CONFLICTS = "conflicts"  # a merge left in progress for 'vsync resolve'


@dataclass
class IntegrateResult:
    outcome: Integration
    old: bytes | None
    new: bytes | None
    plan: MergePlan | None = None
    written: int = 0
    deleted: int = 0
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # (code, path, kind)
    hook_output: str = ""


def require_no_merge(repo: Repository) -> None:
    state = MergeState.load(repo)
    if state is not None:
        n = len(state.unresolved())
        raise StoppedError(
            f"a merge is in progress ({n} unresolved); settle it with 'vsync resolve' and "
            "'vsync commit', or undo it with 'vsync merge --abort'"
        )


def _undo_interrupted_merge(repo: Repository, warn: Warn) -> None:
    """A merge killed while writing the folder, or a clean one killed before its
    commit, is aborted (its backups put the folder back) so it can be done again."""
    state = MergeState.load(repo)
    if state is None or repo.head() != state.ours:
        return
    if not state.writing and state.files:
        return  # conflicts to settle: the user's merge in progress
    abort(repo)
    warn("a merge was interrupted before it was committed; it was undone and is done again")


def merge_message(repo: Repository, theirs: bytes, label: str) -> str:
    host = commit_host(repo.gitdb.commit(theirs)) or label
    return f"Merge {theirs.decode()[:10]} from {host}"


def plan_only(repo: Repository, theirs: bytes) -> MergePlan:
    """The plan a merge of ``theirs`` would follow; nothing is written."""
    with repo.ingester() as ingester:
        return prepare_merge(repo, repo.head(), theirs, ingester)


def integrate(
    repo: Repository,
    theirs: bytes | None,
    label: str,
    warn: Warn,
    dry_run: bool = False,
    *,
    allow_mass_change: bool = False,
    confirm: Confirm | None = None,
    ready: Prefill | None = None,
) -> IntegrateResult:
    """Bring ``theirs`` into the branch and the working folder.

    A mass change (:mod:`vsync.ops.mass_change`) raises MassChangeRefused before the
    folder or the branch is touched, unless ``allow_mass_change`` or ``confirm`` says yes.
    ``ready``: files the fetch has filled already, used by a fast-forward.
    """
    return guarded(
        lambda allow: _integrate(repo, theirs, label, warn, dry_run, allow, ready),
        allow_mass_change,
        confirm,
    )


def _integrate(
    repo: Repository,
    theirs: bytes | None,
    label: str,
    warn: Warn,
    dry_run: bool,
    allow: bool,
    ready: Prefill | None = None,
) -> IntegrateResult:
    repo.require_worktree()
    _undo_interrupted_merge(repo, warn)
    require_no_merge(repo)
    local = repo.head()
    if theirs is None or theirs == local:
        return IntegrateResult(Integration.UP_TO_DATE, local, local)
    if local is not None and is_ancestor(repo, theirs, local):
        return IntegrateResult(Integration.AHEAD, local, local)
    fast_forward = local is None or is_ancestor(repo, local, theirs)
    if dry_run:
        return IntegrateResult(Integration.PLANNED, local, theirs, plan=plan_only(repo, theirs))
    check = checker(repo.config, allow, "apply", label, theirs.decode()[:10])
    if fast_forward:
        with repo.lock(exclusive=True):
            if repo.head() != local:
                raise StoppedError("the branch moved meanwhile; nothing was changed, try again")
            applied = fast_forward_worktree(repo, local, theirs, warn, check, ready)
            advance_branch(repo, local, theirs, f"pull: fast-forward from {label}")
        return IntegrateResult(
            Integration.FAST_FORWARD,
            local,
            theirs,
            written=len(applied.written),
            deleted=len(applied.deleted),
        )
    assert local is not None
    with repo.lock(exclusive=True):
        if repo.head() != local:
            raise StoppedError("the branch moved meanwhile; nothing was changed, try again")
        plan = plan_only(repo, theirs)
        if check is not None:
            check(plan.ours, plan.target())
        # apply_merge refuses (changing nothing) if a path it writes has uncommitted edits;
        # edits elsewhere stay, and the commit that concludes a conflicted merge records
        # the folder as it is then (vsync has no staging area).
        outcome = apply_merge(repo, plan)
        repo.holds.report(warn)
        result = IntegrateResult(Integration.CONFLICTS, local, theirs, plan=plan)
        result.written, result.deleted = len(outcome.written), len(outcome.removed)
        if plan.clean:
            result.new = finish_merge(repo, plan, merge_message(repo, theirs, label))
            result.outcome = Integration.MERGED
        else:
            result.conflicts = [(c.code, c.path, c.kind) for c in plan.conflicts]
    if result.outcome is Integration.MERGED:
        hook = run_hook(repo, "post-merge", "0")
        result.hook_output = hook.output if hook is not None else ""
    return result


def finish_merge(repo: Repository, plan: MergePlan, message: str) -> bytes:
    """The two-parent commit of a clean merge, made from the plan."""
    ours, theirs = plan.labels.ours.commit, plan.labels.theirs.commit
    assert ours is not None and theirs is not None
    tree_id, trees = build_merge_tree(plan)
    c = make_commit(repo, tree_id, [ours, theirs], message)
    repo.gitdb.add_missing([*trees, c])
    advance_branch(repo, ours, c.id, f"merge: {message}")
    state = MergeState.load(repo)
    if state is not None:
        state.clear()
    return c.id
