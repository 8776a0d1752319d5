"""``vsync commit``: snapshot the whole working folder.

Write order: chunks into sealed packs, then manifests, trees and the commit
as git packs (written under temporary names while the folder is read, each
completed and named only once every chunk pack is sealed, the commit's last),
then the branch ref by compare-and-swap. A process killed at any point leaves
the previous commit intact.

The folder is read by :func:`~vsync.model.folder_tree.read_folder_tree`
(memory and time that follow the changes); what it leaves to the reference
reader (unreadable files, files that keep changing, held paths) is read by
:func:`~vsync.model.folder_snapshot.read_working` instead.
"""

from __future__ import annotations

import os
import time
from binascii import unhexlify
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vsync.errors import StoppedError
from vsync.model.commits import HOST_HEADER
from vsync.model.folder_snapshot import (
    ProgressSink,
    WorkingState,
    keep_unreadable,
    read_working,
)
from vsync.model.folder_tree import Fallback, FolderTree, read_folder_tree
from vsync.model.gitdb import PackStream, RawObject, commit_object
from vsync.model.paths import UnicodeTwin
from vsync.model.repository import BRANCH, MERGE_STATE, Repository
from vsync.model.snapshot import FlatMap, build_tree, commit_tree, flatten, lookup
from vsync.model.statcache import StatCache
from vsync.ops.hooks import require_hook_ok, run_hook
from vsync.ops.monitored import (
    Asked,
    ask_watcher,
    case_twins_beside,
    read_for_commit,
    record_commit,
)
from vsync.ops.status import clean_stamp
from vsync.store.chunkstore import PackWriter
from vsync.wording import plural

if TYPE_CHECKING:
    from vsync.ops.mass_change import Check
    from vsync.ops.merge.state import MergeState


@dataclass
class CommitResult:
    commit_id: bytes | None
    parent: bytes | None
    files: int = 0
    hashed: int = 0
    chunks_new: int = 0
    bytes_new: int = 0
    skipped: list[str] = field(default_factory=list)
    post_commit_output: str = ""


def make_commit(
    repo: Repository,
    tree_id: bytes,
    parents: list[bytes],
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> RawObject:
    """A commit by this machine's identity, now; ``headers`` follow ``vsync-host``."""
    ident = repo.config.identity()
    now = int(time.time())
    msg = message if message.endswith("\n") else message + "\n"
    return commit_object(
        tree=tree_id,
        parents=parents,
        author=ident.git_ident(),
        time=now,
        timezone=time.localtime(now).tm_gmtoff,
        message=msg.encode("utf-8"),
        headers=[(HOST_HEADER, ident.host.encode("utf-8")), *(headers or [])],
    )


def move_branch(repo: Repository, old: bytes | None, new: bytes | None, reason: str) -> None:
    """Move the branch from ``old`` to ``new`` (None: no commit) by compare-and-swap,
    with a reflog entry; StoppedError if it moved meanwhile."""
    if not repo.swap_ref(BRANCH, old, new, reason):
        raise StoppedError("the branch moved while this command ran; nothing was changed, retry")


def advance_branch(repo: Repository, old: bytes | None, new: bytes, reason: str) -> None:
    """Move the branch from ``old`` to the commit ``new`` (see :func:`move_branch`)."""
    move_branch(repo, old, new, reason)


def commit(
    repo: Repository,
    message: str,
    warn: Callable[[str], None],
    progress: ProgressSink | None = None,
    parents_extra: list[bytes] | None = None,
    check: Check | None = None,
) -> CommitResult:
    """Commit the folder; ``check(HEAD's map, the folder's map)`` may refuse first
    (sync's mass-change guard), before any git object is written or the branch moves."""
    if not message.strip():
        from vsync.errors import UsageError

        raise UsageError("empty commit message; pass -m MESSAGE")
    # A shared lock: gc (exclusive) waits; the branch moves by compare-and-swap.
    with repo.lock(exclusive=False):
        merge = _merge_state(repo)
        if merge is not None:
            parents_extra = _concluding_merge(repo, merge)
        require_hook_ok(repo, "pre-commit")
        head = repo.head()
        # Damage to what the new commit builds on stops it before anything is written.
        head_tree = None if head is None else commit_tree(repo.gitdb, head)
        guard = PortabilityGuard(repo, warn, head_tree)
        warn = guard.noted  # under portability.strict, Unicode twins are kept for the refusal
        store = repo.chunks
        cache = StatCache(repo.control)
        asked = ask_watcher(repo, cache)  # a running watcher: what changed (fsmonitor)
        result: CommitResult | None = None
        if merge is None and not parents_extra and asked.token is not None:
            with repo.ingester(), store.writer() as w:
                changed = read_for_commit(repo, cache, asked, warn, w)
            if changed is not None:
                try:
                    result = record_commit(repo, cache, asked, changed, w, message, check, guard)
                finally:
                    cache.flush()
        if result is None:
            result = _read_and_record(
                repo, warn, progress, head, head_tree, message, parents_extra, check, asked, guard
            )
        if merge is not None and result.commit_id is not None:
            merge.clear()
    # The hooks run once the lock is let go (a hook may run vsync itself).
    return _after_commit(repo, result, merge)


class PortabilityGuard:
    """The portability check of a commit's tree (:mod:`vsync.model.portability`): one
    warning per path new to the branch whose name Windows or macOS cannot hold, or
    with ``portability.strict`` a refusal
    (:class:`~vsync.model.portability.NotPortable`). Whether a path is new is looked up
    in HEAD's tree for the few suspects only: a commit never flattens HEAD for it.

    Names that differ only by Unicode normalisation never reach a tree: the folder's
    read keeps the first and warns that it skips the second
    (:func:`~vsync.model.paths.unicode_twin`). Under ``portability.strict`` the read's
    warnings pass through :meth:`noted`, which keeps those instead, and the commit is
    refused for them (whether or not anything else changed)."""

    def __init__(self, repo: Repository, warn: Callable[[str], None], head_tree: bytes | None):
        self.repo = repo
        self.warn = warn
        self.head_tree = head_tree
        self.strict = repo.config.portability_strict()
        self.twins: list[str] = []  # (NFC) paths spelled twice, kept under strict

    def noted(self, message: str) -> None:
        """The folder read's warnings: said, but a Unicode twin kept under strict."""
        if self.strict and isinstance(message, UnicodeTwin):
            self.twins.append(message.path)
        else:
            self.warn(message)

    def is_new(self, path: str) -> bool:
        if self.head_tree is None:
            return True
        return lookup(self.repo.gitdb, self.head_tree, path)[0] is None

    def __call__(
        self, paths: Collection[str], beside: dict[str, tuple[str, str]] | None = None
    ) -> None:
        """Check ``paths`` (a whole tree, or the changed paths of one with ``beside``,
        the case twins of the added ones among the names unchanged around them)."""
        from vsync.model.portability import UNICODE_TWIN_PROBLEM, NotPortable, problems

        found = problems(paths, self.is_new, beside)
        if self.twins:
            found = sorted(found + [(path, UNICODE_TWIN_PROBLEM) for path in self.twins])
        if found and self.strict:
            raise NotPortable(found)
        for path, why in found:
            self.warn(f"'{path}' {why}")


def _read_and_record(
    repo: Repository,
    warn: Callable[[str], None],
    progress: ProgressSink | None,
    head: bytes | None,
    head_tree: bytes | None,
    message: str,
    parents_extra: list[bytes] | None,
    check: Check | None,
    asked: Asked,
    guard: PortabilityGuard,
) -> CommitResult:
    """The commit with the whole folder read: by ``read_folder_tree``, or by the
    reference reader where that one gives up."""
    store = repo.chunks
    warned: list[str] = []

    def noted(message: str) -> None:
        warned.append(message)
        warn(message)

    stream = repo.gitdb.pack_stream()
    try:
        tree: FolderTree | None = None
        with repo.ingester() as ingester, store.writer() as w:
            try:
                tree = read_folder_tree(repo, ingester, w, stream, head_tree, noted, progress)
            except Fallback:
                stream.discard()
        if tree is not None:
            result = _record_tree(
                repo,
                tree,
                head,
                head_tree,
                message,
                parents_extra,
                w,
                stream,
                check,
                asked if not warned else None,
                guard,
            )
        else:
            result = _commit_working(
                repo,
                noted,
                progress,
                head,
                head_tree,
                message,
                parents_extra,
                check,
                asked,
                warned,
                guard,
            )
    finally:
        stream.discard()  # what was not installed
    return result


def _after_commit(repo: Repository, result: CommitResult, merge: MergeState | None) -> CommitResult:
    """The post-commit hook (and post-merge, when the commit concluded a merge)."""
    post = run_hook(repo, "post-commit")
    if post is not None:
        result.post_commit_output = post.output
    if merge is not None:
        hook = run_hook(repo, "post-merge", "0")
        if hook is not None:
            result.post_commit_output += hook.output
    return result


def _commit_working(
    repo: Repository,
    warn: Callable[[str], None],
    progress: ProgressSink | None,
    head: bytes | None,
    head_tree: bytes | None,
    message: str,
    parents_extra: list[bytes] | None,
    check: Check | None,
    asked: Asked,
    warned: list[str],
    guard: PortabilityGuard,
) -> CommitResult:
    """The commit with the folder read by ``read_working`` (the reference reader)."""
    cache = StatCache(repo.control)
    with repo.ingester() as ingester, repo.chunks.writer() as w:
        state = read_working(repo, ingester, warn, w, progress, flush=False, cache=cache)
    try:
        result = _record(
            repo, state, cache, head, head_tree, message, parents_extra, w, check, guard
        )
        if asked.token is not None and state.stampable and not warned:
            # taken before the read; the folder is now the commit's tree
            cache.set_mark(asked.token, result.commit_id or head)
        return result
    finally:
        cache.flush()


def _record_tree(
    repo: Repository,
    tree: FolderTree,
    head: bytes | None,
    head_tree: bytes | None,
    message: str,
    parents_extra: list[bytes] | None,
    w: PackWriter,
    stream: PackStream,
    check: Check | None,
    asked: Asked | None,
    guard: PortabilityGuard,
) -> CommitResult:
    """:func:`_record` for a folder read by ``read_folder_tree``: its manifests and trees
    are in ``stream`` already; the commit joins them, then the branch moves. ``asked``:
    the watcher's answer taken before the read (None: a warning made the read partial),
    whose token becomes the stat cache's monitor mark with the commit as clean point."""
    result = CommitResult(None, head, tree.files, tree.hashed)
    result.chunks_new, result.bytes_new = w.chunks_written, w.bytes_written
    tree_id = tree.tree_id
    stamp = None
    try:
        unchanged = not parents_extra and (
            head_tree == tree_id or (head is None and not tree.files)
        )
        if check is not None and not unchanged:  # a refusal changes nothing
            check({} if head_tree is None else flatten(repo.gitdb, head_tree), tree.flat())
        if unchanged:
            guard(())  # skipped twins only
        elif tree.added is not None and tree.gone is not None and head_tree is not None:
            # The old cache was the branch's tree: only the paths new to it can be new
            # names, and their case twins among the names kept are looked up beside them.
            guard(tree.added, case_twins_beside(repo, head_tree, tree.added, tree.gone))
        else:
            guard(tree.paths())
        if unchanged:
            if head is not None:
                stamp = clean_stamp(head, tree_id, tree.ignore_fingerprint)
            return result
        parents = ([head] if head else []) + (parents_extra or [])
        c = make_commit(repo, tree_id, parents, message)
        stream.add(c)
        repo.gitdb.install(stream)
        subject = message.strip().splitlines()[0]
        advance_branch(repo, head, c.id, f"commit{' (initial)' if head is None else ''}: {subject}")
        result.commit_id = c.id
        stamp = clean_stamp(c.id, tree_id, tree.ignore_fingerprint)
        return result
    finally:
        mark = None
        token = None if asked is None else asked.token
        clean = result.commit_id or head
        if token is not None and stamp is not None and clean is not None:
            mark = (*token, unhexlify(clean))
        tree.write_cache(stamp, mark)


def _record(
    repo: Repository,
    state: WorkingState,
    cache: StatCache,
    head: bytes | None,
    head_tree: bytes | None,
    message: str,
    parents_extra: list[bytes] | None,
    w: PackWriter,
    check: Check | None,
    guard: PortabilityGuard,
) -> CommitResult:
    """Write what :func:`commit` read as a commit and move the branch to it; the stat
    cache gets a clean stamp for the tree committed (or found unchanged)."""
    result = CommitResult(None, head, len(state.flat), state.hashed)
    result.chunks_new, result.bytes_new = w.chunks_written, w.bytes_written
    result.skipped = state.skipped + state.unreadable
    old: FlatMap | None = None
    if result.skipped and head_tree is not None:
        # A file skipped because it kept changing, or anything that could not be
        # read, keeps its last committed version: never a deletion nobody made.
        old = flatten(repo.gitdb, head_tree)
        for path in state.skipped:
            if path in old:
                state.flat[path] = old[path]
        keep_unreadable(state.flat, state.unreadable, old)
        result.files = len(state.flat)
    tree_id, trees = build_tree(state.flat)
    unchanged = not parents_extra and (head_tree == tree_id or (head is None and not state.flat))
    if check is not None and not unchanged:  # a refusal changes nothing, holds included
        if old is None:
            old = {} if head_tree is None else flatten(repo.gitdb, head_tree)
        check(old, state.flat)
    guard(() if unchanged else state.flat.keys())  # unchanged: skipped twins only
    # Held-back paths (holdback) commit as the tree had them; a hold whose path the
    # user changed since is over: the folder's version is what gets committed.
    repo.holds.prune(state.held)
    repo.holds.save()
    if unchanged:
        if head is not None and state.stampable:
            cache.set_stamp(clean_stamp(head, tree_id, state.ignore_fingerprint))
        return result
    parents = ([head] if head else []) + (parents_extra or [])
    c = make_commit(repo, tree_id, parents, message)
    objects: list[RawObject] = list(state.new_objects)
    stored = repo.gitdb.presence(len(trees))
    objects.extend(t for t in trees if t.id not in stored)
    objects.append(c)
    repo.gitdb.add(objects)
    subject = message.strip().splitlines()[0]
    advance_branch(repo, head, c.id, f"commit{' (initial)' if head is None else ''}: {subject}")
    result.commit_id = c.id
    if state.stampable:
        cache.set_stamp(clean_stamp(c.id, tree_id, state.ignore_fingerprint))
    return result


def _merge_state(repo: Repository) -> MergeState | None:
    """The merge in progress, or None (its modules are loaded only when there is one)."""
    if not os.path.lexists(repo.control / MERGE_STATE):
        return None
    from vsync.ops.merge.state import MergeState

    return MergeState.load(repo)


def _concluding_merge(repo: Repository, merge: MergeState) -> list[bytes]:
    """The extra parent when this commit concludes a merge; refuses while any is open."""
    if merge.writing:
        raise StoppedError(
            "a merge was interrupted while writing the folder; run 'vsync merge' to do it "
            "again, or 'vsync merge --abort' to undo it"
        )
    unresolved = merge.unresolved()
    if unresolved:
        first = ", ".join(f"'{p}'" for p in unresolved[:3])
        raise StoppedError(
            f"{plural(len(unresolved), 'unresolved conflict')} ({first}); settle them with "
            "'vsync resolve', or undo the merge with 'vsync merge --abort'"
        )
    if repo.head() != merge.ours:
        raise StoppedError(
            "the branch moved since the merge started; undo it with 'vsync merge --abort'"
        )
    return [merge.theirs]
