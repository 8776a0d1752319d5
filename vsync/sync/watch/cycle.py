"""One watch cycle: commit what changed, bring the remote's commits in, push.

It calls the same operations as ``vsync sync`` (commit, pull, push); nothing
here writes the folder or the branch itself. A cycle that finds a merge with
unresolved conflicts does nothing: the user settles it (``vsync resolve``,
``vsync commit``) and the next cycle goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vsync.errors import StoppedError
from vsync.model.repository import Repository
from vsync.ops.commit import commit
from vsync.ops.mass_change import checker
from vsync.ops.merge.integrate import Integration
from vsync.ops.merge.state import MergeState
from vsync.sync.client import REJECTED, SyncOptions, TransferResult, push
from vsync.sync.pull import pull
from vsync.sync.remotes import Remote

Warn = Callable[[str], None]


@dataclass
class CycleResult:
    committed: bytes | None = None
    outcome: Integration | None = None  # None: no pull was needed
    pushed: TransferResult | None = None
    fetched: TransferResult | None = None
    remote_head: bytes | None = None  # the remote's branch as this cycle left it
    conflicts: list[str] = field(default_factory=list)
    waiting_on_merge: bool = False  # a merge with unresolved conflicts is in progress
    raced: bool = False  # the remote moved between pull and push: run again
    skipped: list[str] = field(default_factory=list)


def unresolved(repo: Repository) -> list[str] | None:
    """The paths a merge in progress left unresolved (None: no merge in progress)."""
    state = MergeState.load(repo)
    return None if state is None else sorted(state.unresolved())


def run_cycle(
    repo: Repository,
    remote: Remote,
    opts: SyncOptions,
    warn: Warn,
    *,
    fetch: bool,
    known_remote: bytes | None,
    remote_unchanged: bool = False,
) -> CycleResult:
    """Commit, then pull and push when something moved on either side.

    ``fetch``: the remote moved (or may have); ``known_remote``: the remote's branch
    as the last cycle left it (no network when nothing was committed and the branch
    is still there); ``remote_unchanged``: the remote's watch session says its branch
    is still ``known_remote``, so a new commit is pushed without fetching first (the
    push's compare-and-swap refuses it if the branch moved meanwhile: ``raced``)."""
    result = CycleResult(remote_head=known_remote)
    open_merge = unresolved(repo)
    if open_merge is not None:
        result.waiting_on_merge, result.conflicts = True, open_merge
        return result
    host = repo.config.identity().host
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    # A watcher never lets a mass change through (the guard raises MassChangeRefused).
    check = checker(repo.config, False, "commit")
    made = commit(repo, repo.config.auto_message("watch", host, stamp), warn, check=check)
    result.committed, result.skipped = made.commit_id, made.skipped
    head = repo.head()
    if not fetch and head == known_remote:
        return result
    if remote_unchanged and not fetch and known_remote is not None and head is not None:
        return _push(repo, remote, opts, result, head)
    pulled = pull(repo, remote, opts, warn, allow_mass_change=False)
    result.fetched, result.outcome = pulled.fetched, pulled.merged.outcome
    result.remote_head = pulled.fetched.new
    if pulled.merged.outcome is Integration.CONFLICTS:
        result.conflicts = sorted(path for _code, path, _kind in pulled.merged.conflicts)
        result.waiting_on_merge = True
        return result
    head = repo.head()
    if head is None or head == pulled.fetched.new:
        return result
    return _push(repo, remote, opts, result, head)


def _push(
    repo: Repository, remote: Remote, opts: SyncOptions, result: CycleResult, head: bytes
) -> CycleResult:
    try:
        result.pushed = push(repo, remote, opts)
    except StoppedError as exc:
        if str(exc) != REJECTED:
            raise
        result.raced = True  # the remote moved since we looked: the next cycle fetches
        return result
    result.remote_head = head
    return result
