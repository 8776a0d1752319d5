"""``vsync commit``: snapshot the whole working folder.

Write order: chunks into sealed packs, then manifests, trees and the commit
as one git pack, then the branch ref by compare-and-swap. A process killed at
any point leaves the previous commit intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dulwich.objects import Commit, ShaFile

from vsync.errors import StoppedError
from vsync.model.commits import HOST_HEADER
from vsync.model.gitpack import Presence, add_objects
from vsync.model.ingest import Ingester
from vsync.model.repository import BRANCH, Repository
from vsync.model.snapshot import build_tree, commit_tree, flatten
from vsync.model.working import ProgressSink, read_working
from vsync.ops.hooks import require_hook_ok, run_hook
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
) -> Commit:
    ident = repo.config.identity()
    now = int(time.time())
    tz = time.localtime(now).tm_gmtoff
    c = Commit()
    c.tree = tree_id
    c.parents = parents
    c.author = c.committer = ident.git_ident()
    c.author_time = c.commit_time = now
    c.author_timezone = c.commit_timezone = tz
    c.encoding = b"UTF-8"
    msg = message if message.endswith("\n") else message + "\n"
    c.message = msg.encode("utf-8")
    c._extra.append((HOST_HEADER, ident.host.encode("utf-8")))
    return c


def advance_branch(repo: Repository, old: bytes | None, new: bytes, reason: str) -> None:
    """Move the branch from ``old`` to ``new`` by compare-and-swap, with a reflog entry."""
    ident = repo.config.identity()
    ok = repo.git.refs.set_if_equals(
        BRANCH, old, new, committer=ident.git_ident(), message=reason.encode("utf-8")
    )
    if not ok:
        raise StoppedError("the branch moved while this command ran; nothing was changed, retry")


def commit(
    repo: Repository,
    message: str,
    warn: Callable[[str], None],
    progress: ProgressSink | None = None,
    parents_extra: list[bytes] | None = None,
) -> CommitResult:
    if not message.strip():
        from vsync.errors import UsageError

        raise UsageError("empty commit message; pass -m MESSAGE")
    # A shared lock: gc (exclusive) waits; the branch moves by compare-and-swap.
    with repo.lock(exclusive=False):
        merge = MergeState.load(repo)
        if merge is not None:
            parents_extra = _concluding_merge(repo, merge)
        require_hook_ok(repo, "pre-commit")
        head = repo.head()
        store = repo.chunks
        params = repo.config.chunker_params()
        with Ingester(params, repo.config.compression_level()) as ingester, store.writer() as w:
            state = read_working(repo, ingester, warn, w, progress)
        # Held-back paths (holdback) commit as the tree had them; a hold whose path the
        # user changed since is over: the folder's version is what gets committed.
        repo.holds.prune(state.held)
        repo.holds.save()
        result = CommitResult(None, head, len(state.flat), state.hashed)
        result.chunks_new, result.bytes_new = w.chunks_written, w.bytes_written
        result.skipped = state.skipped
        if state.skipped and head is not None:
            # A file skipped because it kept changing keeps its last committed version.
            old = flatten(repo.git.object_store, commit_tree(repo.git.object_store, head))
            for path in state.skipped:
                if path in old:
                    state.flat[path] = old[path]
        tree_id, trees = build_tree(state.flat)
        if not parents_extra and (
            (head is not None and commit_tree(repo.git.object_store, head) == tree_id)
            or (head is None and not state.flat)
        ):
            return result
        parents = ([head] if head else []) + (parents_extra or [])
        c = make_commit(repo, tree_id, parents, message)
        store_git = repo.git.object_store
        objects: list[ShaFile] = list(state.new_objects)
        stored = Presence(store_git, len(trees))
        objects.extend(t for t in trees if t.id not in stored)
        objects.append(c)
        add_objects(store_git, objects)
        subject = message.strip().splitlines()[0]
        advance_branch(repo, head, c.id, f"commit{' (initial)' if head is None else ''}: {subject}")
        result.commit_id = c.id
        if merge is not None:
            merge.clear()
    post = run_hook(repo, "post-commit")
    if post is not None:
        result.post_commit_output = post.output
    if merge is not None:
        hook = run_hook(repo, "post-merge", "0")
        if hook is not None:
            result.post_commit_output += hook.output
    return result


def _concluding_merge(repo: Repository, merge: MergeState) -> list[bytes]:
    """The extra parent when this commit concludes a merge; refuses while any is open."""
    unresolved = merge.unresolved()
    if unresolved:
        first = ", ".join(f"'{p}'" for p in unresolved[:3])
        raise StoppedError(
            f"{len(unresolved)} unresolved conflict(s) ({first}); settle them with "
            "'vsync resolve', or undo the merge with 'vsync merge --abort'"
        )
    if repo.head() != merge.ours:
        raise StoppedError(
            "the branch moved since the merge started; undo it with 'vsync merge --abort'"
        )
    return [merge.theirs]
