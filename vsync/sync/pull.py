"""pull, sync and clone: fetch or push plus what the working folder needs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import StoppedError, UsageError
from vsync.model.repository import BRANCH, Repository
from vsync.model.snapshot import commit_tree, flatten
from vsync.ops.checkout import apply_snapshot
from vsync.ops.commit import CommitResult, advance_branch, commit
from vsync.ops.history_graph import is_ancestor
from vsync.sync.client import SyncOptions, TransferResult, fetch, push
from vsync.sync.remotes import Remote, add_remote
from vsync.sync.worktree_update import fast_forward_worktree

Warn = Callable[[str], None]


@dataclass
class PullResult:
    fetched: TransferResult
    outcome: str  # "up-to-date", "ahead", "fast-forward"
    old: bytes | None = None
    new: bytes | None = None
    written: int = 0
    deleted: int = 0


def diverged_message(remote: Remote) -> str:
    return (
        f"your copy and {remote.label} have diverged (both have new commits); "
        "merging them is not available in this version, nothing was changed"
    )


def integrate(
    repo: Repository, remote: Remote, remote_main: bytes | None, warn: Warn
) -> PullResult:
    """Fast-forward the branch and working folder to ``remote_main`` when possible."""
    local = repo.head()
    empty = TransferResult(remote.label)
    if remote_main is None or remote_main == local:
        return PullResult(empty, "up-to-date", local, local)
    if local is not None and is_ancestor(repo, remote_main, local):
        return PullResult(empty, "ahead", local, local)
    if local is not None and not is_ancestor(repo, local, remote_main):
        raise StoppedError(diverged_message(remote))
    with repo.lock(exclusive=True):
        if repo.head() != local:
            raise StoppedError("the branch moved while pulling; nothing was changed, pull again")
        applied = fast_forward_worktree(repo, local, remote_main, warn)
        advance_branch(repo, local, remote_main, f"pull: fast-forward from {remote.label}")
    return PullResult(
        empty, "fast-forward", local, remote_main, len(applied.written), len(applied.deleted)
    )


def pull(repo: Repository, remote: Remote, opts: SyncOptions, warn: Warn) -> PullResult:
    repo.require_worktree()
    fetched = fetch(repo, remote, opts)
    result = integrate(repo, remote, fetched.new, warn)
    result.fetched = fetched
    return result


@dataclass
class SyncResult:
    committed: CommitResult | None
    pulled: PullResult
    pushed: TransferResult | None = None
    notes: list[str] = field(default_factory=list)


def sync(repo: Repository, remote: Remote, opts: SyncOptions, warn: Warn) -> SyncResult:
    """Commit what changed, pull, push."""
    repo.require_worktree()
    ident = repo.config.identity()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    committed = commit(repo, f"sync from {ident.host} at {stamp}", warn)
    pulled = pull(repo, remote, opts, warn)
    result = SyncResult(committed if committed.commit_id else None, pulled)
    head = repo.head()
    if head is not None and head != pulled.fetched.new:
        result.pushed = push(repo, remote, opts)
    return result


def clone(
    url: str, dest: Path, opts: SyncOptions, warn: Warn, bare: bool = False
) -> tuple[Repository, TransferResult]:
    """Make ``dest`` a copy of the repository at ``url`` (removed again on failure)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists and is not an empty folder")
    created = not dest.exists()
    repo = None
    try:
        repo = Repository.init(dest, bare=bare)
        remote = add_remote(repo, "origin", url, opts.remote_cmd)
        fetched = fetch(repo, remote, opts)
        if fetched.new is not None:
            if not repo.git.refs.set_if_equals(
                BRANCH,
                None,
                fetched.new,
                committer=repo.config.identity().git_ident(),
                message=f"clone: from {url}".encode(),
            ):
                raise StoppedError("could not set the branch of the new clone")
            if not bare:
                store = repo.git.object_store
                target = flatten(store, commit_tree(store, fetched.new))
                apply_snapshot(repo, target, [""], False, warn)
        return repo, fetched
    except BaseException:
        if repo is not None:
            repo.close()
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        elif dest.exists():
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()
        raise
