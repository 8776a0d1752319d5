"""Status and commit with a running watcher: only the paths it reports are looked at.

The stat cache's header keeps the watcher token under which its entries were last
refreshed (:mod:`vsync.model.statcache`). :func:`ask_watcher` asks the watcher
what changed since then (:mod:`vsync.model.fsmonitor`). When the cache's clean
stamp still names the branch's commit and the ignore rules, the folder is that
commit's tree except at the reported paths:

- no path reported: status is clean without loading the cache or walking;
- some: they are looked at as the scan would (:mod:`vsync.model.changed_paths`)
  and hashed; status compares them with the cache entries they had (the tree's),
  commit builds the new tree from the commit's tree and them
  (:func:`~vsync.model.gitdb.tree_edit.edit_tree`).

Any doubt (no watcher or no answer, a token of another watcher, no stamp, a
merge in progress, held paths, a path the scan would warn about) is the full
path, as without a watcher; the token the watcher gave is then recorded by that
full read if it read the whole folder without a warning.
"""

from __future__ import annotations

import os
from binascii import hexlify, unhexlify
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vsync.model.changed_paths import Examined, examine
from vsync.model.fsmonitor import Answer, ask
from vsync.model.gitdb.headref import loose_ref
from vsync.model.gitdb.types import MODE_EXEC, MODE_FILE, MODE_LINK, RawObject
from vsync.model.ignore import Ignore, fingerprint_of
from vsync.model.repository import BRANCH, HELD_FILE, MERGE_STATE, Repository
from vsync.model.statcache import SMUDGED, MonitorToken, Stamp, StatCache, read_header

if TYPE_CHECKING:
    from vsync.model.snapshot import FlatMap
    from vsync.ops.commit import CommitResult
    from vsync.ops.mass_change import Check
    from vsync.ops.status import StatusResult
    from vsync.store.chunkstore import PackWriter


@dataclass
class Asked:
    """What the watcher said, for one status or commit."""

    answer: Answer | None  # None: no watcher answered
    stamp: Stamp | None  # the cache's clean stamp, if it still names HEAD and the rules
    head: bytes | None  # the branch's commit (hex), as its loose ref names it

    @property
    def token(self) -> MonitorToken | None:
        """The token a full read of the folder records (None: no watcher)."""
        return None if self.answer is None else self.answer.token

    @property
    def changed(self) -> list[str] | None:
        """The paths changed since the cache was refreshed, if they are all that changed
        from the stamp's tree (None: read the whole folder)."""
        if self.answer is None or self.stamp is None:
            return None
        return self.answer.paths


def ask_watcher(repo: Repository, cache: StatCache) -> Asked:
    """Ask the folder's watcher what changed since the cache's token (see the module
    docstring). No watcher: an :class:`Asked` with no answer, at the cost of one stat."""
    header = read_header(cache.path)
    stamp, token = header if header is not None else (None, None)
    answer = ask(repo.control, token)
    if answer is None:
        return Asked(None, None, None)
    if token is None or answer.paths is None:
        return Asked(Answer(answer.token, None, answer.reason), None, None)
    head = loose_ref(repo.control / "git", BRANCH)
    root = repo.require_worktree()
    if (
        stamp is None
        or head is None
        or unhexlify(head) != stamp[0]
        or os.path.lexists(repo.control / MERGE_STATE)
        or os.path.lexists(repo.control / HELD_FILE)
        or fingerprint_of(root) != stamp[2]
    ):
        stamp = None
    return Asked(answer, stamp, head)


def _git_mode(st_mode: int) -> int:
    if st_mode & 0o170000 == 0o120000:
        return MODE_LINK
    return MODE_EXEC if st_mode & 0o111 else MODE_FILE


def _tree_entries(repo: Repository, cache: StatCache, stamp: Stamp, paths: list[str]) -> FlatMap:
    """The stamp's tree's entries at ``paths`` (cache entries the stamp covers): from the
    cache, or from the tree for a smudged entry, whose mode the cache lost."""
    base = cache.base()
    out: FlatMap = {}
    smudged: list[str] = []
    for path in paths:
        row = base.row(base.index[path])
        if row[4] == SMUDGED:
            smudged.append(path)
        else:
            out[path] = (_git_mode(row[4]), row[6])
    if smudged:
        from vsync.model.snapshot import lookup

        tree = hexlify(stamp[1])
        for path in smudged:
            found, oid = lookup(repo.gitdb, tree, path)
            if found is not None:
                out[path] = (found, oid)
    return out


@dataclass
class _Read:
    examined: Examined
    old: FlatMap  # the tree's entries under the changed paths
    new: FlatMap  # the folder's
    skipped: list[str]
    unreadable: list[str]
    hashed: int
    new_objects: list[RawObject]
    ignore_fingerprint: bytes


def _read_changed(
    repo: Repository,
    cache: StatCache,
    asked: Asked,
    warn: Callable[[str], None],
    writer: PackWriter | None,
) -> _Read | None:
    from vsync.model.folder_snapshot import read_working

    assert asked.changed is not None and asked.stamp is not None
    root = repo.require_worktree()
    ignore = Ignore(root)
    seen = examine(root, cache.base(), asked.changed, ignore)
    if seen is None:
        return None
    old = _tree_entries(repo, cache, asked.stamp, seen.old)
    with repo.ingester() as ingester:
        state = read_working(
            repo, ingester, warn, writer, None, flush=False, cache=cache, only=seen.files
        )
    for path in seen.old:
        if path not in seen.files:
            cache.forget(path)
    return _Read(
        seen,
        old,
        state.flat,
        state.skipped,
        state.unreadable,
        state.hashed,
        list(state.new_objects),
        state.ignore_fingerprint,
    )


def monitored_status(
    repo: Repository, cache: StatCache, asked: Asked, warn: Callable[[str], None]
) -> StatusResult | None:
    """The status from the watcher's answer, or None: take the full path."""
    from vsync.ops.status import StatusResult, compare

    changed = asked.changed
    if changed is None or asked.stamp is None:
        return None
    if not changed:
        return StatusResult([], asked.head)
    read = _read_changed(repo, cache, asked, warn, None)
    if read is None:
        return None
    new = dict(read.new)
    for path in read.skipped:  # kept changing while read: certainly not clean
        new[path] = (0, b"")
    for path in read.unreadable:  # what cannot be read counts as unchanged
        if path in read.old:
            new[path] = read.old[path]
    entries = compare(read.old, new)
    _settle(cache, asked, read, clean=not entries)
    cache.flush()
    return StatusResult(entries, asked.head, read.skipped, None, [], sorted(read.unreadable))


def _settle(cache: StatCache, asked: Asked, read: _Read, clean: bool) -> None:
    """The stamp and token the cache keeps after the changed paths were read."""
    whole = not read.skipped and not read.unreadable
    if clean and whole and asked.stamp is not None:
        cache.set_stamp(asked.stamp)  # the entries still make the stamp's tree
    if whole:
        cache.set_token(asked.token)  # else those paths are reported again next time


@dataclass
class ChangedCommit:
    """What :func:`read_for_commit` read, for :func:`record_commit`."""

    head: bytes
    head_tree: bytes
    read: _Read | None  # None: no path changed
    total: int  # files in the snapshot


def read_for_commit(
    repo: Repository,
    cache: StatCache,
    asked: Asked,
    warn: Callable[[str], None],
    writer: PackWriter,
) -> ChangedCommit | None:
    """Read (and store, through ``writer``) the changed paths for a commit; None: take
    the full path."""
    from vsync.model.snapshot import commit_tree

    if asked.changed is None or asked.stamp is None or asked.head is None:
        return None
    head_tree = commit_tree(repo.gitdb, asked.head)
    if unhexlify(head_tree) != asked.stamp[1]:
        return None
    total = len(cache.base().index)
    if not asked.changed:
        return ChangedCommit(asked.head, head_tree, None, total)
    read = _read_changed(repo, cache, asked, warn, writer)
    if read is None:
        return None
    kept = (set(read.skipped) | set(read.unreadable)) & read.old.keys()
    total += len(read.new) + len(kept) - len(read.old)
    return ChangedCommit(asked.head, head_tree, read, total)


def record_commit(
    repo: Repository,
    cache: StatCache,
    asked: Asked,
    got: ChangedCommit,
    writer: PackWriter,
    message: str,
    check: Check | None,
) -> CommitResult:
    """Write the commit of what :func:`read_for_commit` read (its chunks sealed), its
    tree built from HEAD's and the changed paths; the caller flushes the cache."""
    from vsync.model.gitdb.tree_edit import edit_tree
    from vsync.ops.commit import CommitResult, advance_branch, make_commit
    from vsync.ops.status import clean_stamp

    read = got.read
    changes: dict[str, tuple[int, bytes] | None] = {}
    result = CommitResult(None, got.head, got.total, 0)
    result.chunks_new, result.bytes_new = writer.chunks_written, writer.bytes_written
    whole = True
    if read is not None:
        kept = set(read.skipped) | set(read.unreadable)  # they keep the commit's version
        changes = {p: e for p, e in read.new.items() if read.old.get(p) != e}
        changes.update((p, None) for p in read.old if p not in read.new and p not in kept)
        result.hashed = read.hashed
        result.skipped = read.skipped + read.unreadable
        whole = not kept
    if not changes:
        if whole:
            assert asked.stamp is not None
            cache.set_stamp(asked.stamp)
            cache.set_token(asked.token)
        return result
    assert read is not None
    if check is not None:
        _check(repo, got.head_tree, read, changes, check)
    tree_id, trees = edit_tree(repo.gitdb, got.head_tree, changes)
    c = make_commit(repo, tree_id, [got.head], message)
    objects: list[RawObject] = list(read.new_objects)
    stored = repo.gitdb.presence(len(trees))
    objects.extend(t for t in trees if t.id not in stored)
    objects.append(c)
    repo.gitdb.add(objects)
    subject = message.strip().splitlines()[0]
    advance_branch(repo, got.head, c.id, f"commit: {subject}")
    result.commit_id = c.id
    if whole:
        cache.set_stamp(clean_stamp(c.id, tree_id, read.ignore_fingerprint))
        cache.set_token(asked.token)
    return result


def _check(
    repo: Repository,
    head_tree: bytes,
    read: _Read,
    changes: dict[str, tuple[int, bytes] | None],
    check: Check,
) -> None:
    """The mass-change guard on the changed paths; if they alone would be a mass change,
    on the whole maps (the share of the tracked files needs them all)."""
    from vsync.ops.mass_change import MassChangeRefused

    after = {p: e for p, e in read.old.items() if changes.get(p, e) is not None}
    after.update((p, e) for p, e in changes.items() if e is not None)
    try:
        check(read.old, after)
        return
    except MassChangeRefused:
        pass
    from vsync.model.snapshot import flatten

    tracked = flatten(repo.gitdb, head_tree)
    whole = dict(tracked)
    for path, entry in changes.items():
        if entry is None:
            whole.pop(path, None)
        else:
            whole[path] = entry
    check(tracked, whole)
