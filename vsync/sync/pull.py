"""pull, sync and clone: fetch or push plus what the working folder needs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import StoppedError, UsageError, VsyncError
from vsync.model.repository import BRANCH, Repository
from vsync.model.snapshot import flatten_commit
from vsync.ops.checkout import apply_snapshot
from vsync.ops.commit import CommitResult, commit
from vsync.ops.mass_change import Confirm, checker, guarded
from vsync.ops.merge.integrate import (
    IntegrateResult,
    Integration,
    integrate,
    require_no_merge,
)
from vsync.sync.client import Session, SyncOptions, TransferResult, fetch, push
from vsync.sync.folder_fill import FolderFill
from vsync.sync.offer import OfferStats, teeing
from vsync.sync.remotes import Remote, add_remote
from vsync.sync.send import is_transport_failure, start_sending

Warn = Callable[[str], None]


@dataclass
class PullResult:
    fetched: TransferResult
    merged: IntegrateResult


def pull(
    repo: Repository,
    remote: Remote,
    opts: SyncOptions,
    warn: Warn,
    dry_run: bool = False,
    *,
    allow_mass_change: bool = False,
    confirm: Confirm | None = None,
    session: Session | None = None,
) -> PullResult:
    """Fetch, then fast-forward or merge; ``dry_run`` only reports the plan.
    ``session``: a session kept open for several requests (``vsync sync``).

    A pull that would delete or overwrite too many tracked files raises
    MassChangeRefused with the folder and the branch unchanged (the fetch has
    moved ``origin/main``), unless ``allow_mass_change`` or ``confirm`` says yes
    (:mod:`vsync.ops.mass_change`).
    """
    repo.require_worktree()
    require_no_merge(repo)
    fill = None if dry_run else FolderFill(repo, repo.head())
    try:
        fetched = fetch(repo, remote, opts, fill, session)
        merged = integrate(
            repo,
            fetched.new,
            remote.label,
            warn,
            dry_run,
            allow_mass_change=allow_mass_change,
            confirm=confirm,
            ready=None if fill is None else fill.prefill,
        )
    finally:
        if fill is not None:
            fill.discard()
    return PullResult(fetched, merged)


@dataclass
class SyncResult:
    committed: CommitResult | None
    pulled: PullResult
    pushed: TransferResult | None = None
    offered: OfferStats = field(default_factory=OfferStats)  # chunks sent during the commit
    sessions: int = 0  # sessions opened with the remote


def sync(
    repo: Repository,
    remote: Remote,
    opts: SyncOptions,
    warn: Warn,
    *,
    allow_mass_change: bool = False,
    confirm: Confirm | None = None,
    message: str | None = None,
) -> SyncResult:
    """Commit what changed, pull (merging if needed), push unless conflicts remain.

    The commit's message is ``message``, else the configured automatic message
    (``commit.autoMessage``, default "sync from HOST at DATE").

    With a server that lists ``send-v1`` all of it is one session, and the chunks
    the commit stores travel while it runs (:mod:`vsync.sync.send`); the commit
    lands whatever happens to the connection.

    The commit and the pull are each checked by the mass-change guard (see
    :func:`pull`): a refused commit raises MassChangeRefused before anything is
    committed, fetched or pushed; a refused pull after it, with the commit made
    and nothing pushed.
    """
    repo.require_worktree()
    require_no_merge(repo)
    ident = repo.config.identity()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    if message is None:
        message = repo.config.auto_message("sync", ident.host, stamp)
    sending = start_sending(repo, remote, opts, warn)
    try:
        with teeing(repo, sending.offer):
            committed = guarded(
                lambda allow: commit(
                    repo, message, warn, check=checker(repo.config, allow, "commit")
                ),
                allow_mass_change,
                confirm,
            )
        session = sending.end_offer(warn)
        sessions = sending.sessions + (session is None)
        pulled = pull(
            repo,
            remote,
            opts,
            warn,
            allow_mass_change=allow_mass_change,
            confirm=confirm,
            session=session,
        )
        result = SyncResult(
            committed if committed.commit_id else None, pulled, offered=sending.stats
        )
        head = repo.head()
        conflicts = pulled.merged.outcome is Integration.CONFLICTS
        if not conflicts and head is not None and head != pulled.fetched.new:
            try:
                result.pushed = push(repo, remote, opts, session=sending.session)
            except VsyncError as exc:
                if sending.session is None or not is_transport_failure(exc):
                    raise
                # The kept session died meanwhile (the server's idle timeout during a
                # long merge): the push, a compare-and-swap, runs again in its own.
                sending.drop()
                sessions += 1
                result.pushed = push(repo, remote, opts)
            else:
                sending.server_done = not result.pushed.up_to_date  # it ends after a push
        result.sessions = sessions
        return result
    finally:
        sending.close()


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
        remote = add_remote(repo, "origin", url, opts.remote_cmd, opts.endpoint)
        fill = None if bare else FolderFill(repo, None, clone=True)
        try:
            fetched = fetch(repo, remote, opts, fill)
            if fetched.new is not None:
                if not repo.swap_ref(BRANCH, None, fetched.new, f"clone: from {url}"):
                    raise StoppedError("could not set the branch of the new clone")
                if not bare:
                    target = flatten_commit(repo.gitdb, fetched.new)
                    ready = None if fill is None else fill.prefill
                    apply_snapshot(repo, target, [""], False, warn, ready=ready)
        finally:
            if fill is not None:
                fill.discard()
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
