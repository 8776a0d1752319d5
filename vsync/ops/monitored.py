"""Status and commit with a running watcher: only the paths it reports are looked at.

The stat cache's header keeps a *mark* (:mod:`vsync.model.statcache`): the
watcher token under which the entries were last refreshed and, when it was so,
the commit whose tree the folder exactly was at that token (its *clean point*).
:func:`ask_watcher` asks the watcher what changed since then
(:mod:`vsync.model.fsmonitor`). While the clean point is the branch's commit,
the folder is that commit's tree except at the reported paths:

- no path reported: status is clean without loading the cache or walking;
- some: they are looked at as the scan would (:mod:`vsync.model.changed_paths`)
  and hashed (the stat cache spares unchanged files); status compares them with
  the commit's entries there, commit builds its tree from the commit's tree and
  them (:func:`~vsync.model.gitdb.tree_edit.edit_tree`). The mark moves on only
  when the folder is found clean again (or committed): until then every path
  changed since the clean point is looked at, so the cost follows the changes
  made since the last commit, not the folder's size.

Any doubt (no watcher or no answer, a token of another watcher, no clean point
or one that is not the branch's commit, a merge in progress, held paths, a path
the scan would warn about) is the full path, as without a watcher; the token the
watcher gave is recorded by that full read if it read the whole folder without a
warning (with the clean point if it found the folder clean).
"""

from __future__ import annotations

import os
from binascii import unhexlify
from bisect import bisect_left
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, NamedTuple

from vsync.model.fsmonitor import Answer, ask
from vsync.model.gitdb.headref import loose_ref
from vsync.model.gitdb.modes import MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE
from vsync.model.repository import BRANCH, HELD_FILE, MERGE_STATE, Repository
from vsync.model.statcache import NO_ID, SMUDGED, MonitorToken, Stamp, StatCache, read_header

if TYPE_CHECKING:
    from vsync.model.changed_paths import Examined
    from vsync.model.gitdb.reader import ObjectReader
    from vsync.model.gitdb.types import RawObject
    from vsync.model.snapshot import FlatMap
    from vsync.ops.commit import CommitResult
    from vsync.ops.mass_change import Check
    from vsync.ops.status import StatusResult
    from vsync.store.chunkstore import PackWriter


Portable = Callable[[Collection[str], dict[str, tuple[str, str]]], None]


class Asked(NamedTuple):
    """What the watcher said, for one status or commit."""

    answer: Answer | None  # None: no watcher answered
    head: bytes | None = None  # the branch's commit (hex), when it is the clean point
    stamp: Stamp | None = None  # the cache's clean stamp, when it names that commit too
    files: int = 0  # the stat cache's entries, as its header counts them

    @property
    def token(self) -> MonitorToken | None:
        """The token a full read of the folder records (None: no watcher)."""
        return None if self.answer is None else self.answer.token

    @property
    def changed(self) -> list[str] | None:
        """The paths changed since the clean point, the branch's commit (None: unknown,
        read the whole folder)."""
        if self.answer is None or self.head is None:
            return None
        return self.answer.paths


def ask_watcher(repo: Repository, cache: StatCache) -> Asked:
    """Ask the folder's watcher what changed since the cache's mark (see the module
    docstring). No watcher: an :class:`Asked` with no answer, at the cost of one stat."""
    header = read_header(cache.path)
    stamp, mark, files = header if header is not None else (None, None, 0)
    answer = ask(repo.control, None if mark is None else (mark[0], mark[1]))
    if answer is None:
        return Asked(None)
    if mark is None or answer.paths is None or mark[2] == NO_ID:
        return Asked(Answer(answer.token, None, answer.reason))
    head = loose_ref(repo.control / "git", BRANCH)
    if (
        head is None
        or unhexlify(head) != mark[2]
        or os.path.lexists(repo.control / MERGE_STATE)
        or os.path.lexists(repo.control / HELD_FILE)
    ):
        return Asked(Answer(answer.token, None, "not-clean-point"))
    return Asked(answer, head, stamp if stamp is not None and stamp[0] == mark[2] else None, files)


def _git_mode(st_mode: int) -> int:
    if st_mode & 0o170000 == 0o120000:
        return MODE_LINK
    return MODE_EXEC if st_mode & 0o111 else MODE_FILE


class _TreeLookup:
    """A commit's entries under some paths, each tree read once."""

    def __init__(self, reader: ObjectReader, tree: bytes) -> None:
        self._reader = reader
        self._root = tree
        self._trees: dict[bytes, dict[str, tuple[int, bytes]]] = {}

    def _items(self, tree: bytes) -> dict[str, tuple[int, bytes]]:
        items = self._trees.get(tree)
        if items is None:
            items = {
                name.decode("utf-8", "surrogateescape"): (mode, oid)
                for name, mode, oid in self._reader.tree(tree).items
            }
            self._trees[tree] = items
        return items

    def folder(self, path: str) -> dict[str, tuple[int, bytes]] | None:
        """The entries of the folder ``path`` ('' the root), or None: not a folder here."""
        tree = self._root
        for name in path.split("/") if path else ():
            found = self._items(tree).get(name)
            if found is None or found[0] != MODE_TREE:
                return None
            tree = found[1]
        return self._items(tree)

    def keeps(self, path: str, mode: int, oid: bytes, gone: list[str]) -> bool:
        """Whether the entry at ``path`` is still there once the sorted paths ``gone``
        are removed: a file not among them, a folder with a file left below it."""
        if mode != MODE_TREE:
            return path not in _sorted_slice(gone, path, path + "\0")
        if not _sorted_slice(gone, path + "/", path + "0"):  # '0' follows '/'
            return True
        return any(
            self.keeps(f"{path}/{name}", sub_mode, sub_oid, gone)
            for name, (sub_mode, sub_oid) in self._items(oid).items()
        )

    def under(self, path: str, out: FlatMap) -> None:
        """Add the entries at ``path`` and below it to ``out``."""
        tree = self._root
        *folders, name = path.split("/")
        for folder in folders:
            found = self._items(tree).get(folder)
            if found is None or found[0] != MODE_TREE:
                return
            tree = found[1]
        found = self._items(tree).get(name)
        if found is None:
            return
        if found[0] != MODE_TREE:
            out[path] = found
            return
        stack = [(found[1], path)]
        while stack:
            tid, folder = stack.pop()
            for sub, (mode, oid) in self._items(tid).items():
                if mode == MODE_TREE:
                    stack.append((oid, f"{folder}/{sub}"))
                else:
                    out[f"{folder}/{sub}"] = (mode, oid)


def _sorted_slice(items: list[str], low: str, high: str) -> list[str]:
    """The items of the sorted list ``items`` from ``low`` (included) to ``high``."""
    return items[bisect_left(items, low) : bisect_left(items, high)]


def case_twins_beside(
    repo: Repository, head_tree: bytes, added: Collection[str], gone: Collection[str]
) -> dict[str, tuple[str, str]]:
    """The case twins of the paths ``added`` to the commit's tree ``head_tree`` among the
    names it keeps in their folders (those of ``gone`` removed): a new ``readme.md``
    beside an unchanged ``README.md`` (:func:`~vsync.model.portability.twins_beside`).
    Reads the trees of the folders the new paths are in, nothing else."""
    from vsync.model.portability import twins_beside

    if not added:
        return {}
    lookup = _TreeLookup(repo.gitdb, head_tree)
    removed = sorted(gone)

    def names_in(folder: str) -> list[str] | None:
        items = lookup.folder(folder)
        if items is None:
            return None
        head = f"{folder}/" if folder else ""
        return [n for n, (m, o) in items.items() if lookup.keeps(head + n, m, o, removed)]

    return twins_beside(sorted(added), names_in)


def _commit_entries(repo: Repository, cache: StatCache, asked: Asked, seen: Examined) -> FlatMap:
    """The branch's commit's entries under the changed paths: from the stat cache while
    its clean stamp says its entries are that tree, else from the tree."""
    out: FlatMap = {}
    if asked.stamp is not None and cache.stamp is not None:
        base = cache.base()
        for path in seen.old:
            row = base.row(base.index[path])
            if row[4] == SMUDGED:
                break  # its mode was not kept: ask the tree
            out[path] = (_git_mode(row[4]), row[6])
        else:
            return out
        out.clear()
    from vsync.model.snapshot import commit_tree

    assert asked.head is not None
    lookup = _TreeLookup(repo.gitdb, commit_tree(repo.gitdb, asked.head))
    for path in seen.prefixes:
        lookup.under(path, out)
    return out


class _Read(NamedTuple):
    examined: Examined
    old: FlatMap  # the commit's entries under the changed paths
    new: FlatMap  # the folder's
    skipped: list[str]
    unreadable: list[str]
    hashed: int
    new_objects: list[RawObject]
    ignore_fingerprint: bytes

    @property
    def whole(self) -> bool:
        return not self.skipped and not self.unreadable


def _read_changed(
    repo: Repository,
    cache: StatCache,
    asked: Asked,
    warn: Callable[[str], None],
    writer: PackWriter | None,
) -> _Read | None:
    from vsync.model.changed_paths import examine
    from vsync.model.folder_snapshot import read_working
    from vsync.model.ignore import Ignore

    assert asked.changed is not None
    root = repo.require_worktree()
    ignore = Ignore(root)
    seen = examine(root, cache.base(), asked.changed, ignore)
    if seen is None:
        return None
    old = _commit_entries(repo, cache, asked, seen)
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
        ignore.fingerprint,
    )


def monitored_status(
    repo: Repository, cache: StatCache, asked: Asked, warn: Callable[[str], None]
) -> StatusResult | None:
    """The status from the watcher's answer, or None: take the full path."""
    from vsync.ops.status import StatusResult, compare

    if asked.changed is None:
        return None
    if not asked.changed:
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
    _warn_unportable(repo, asked, entries, warn)
    if not entries and read.whole:
        if _entries_are(cache, asked) and asked.stamp is not None:
            cache.set_stamp(asked.stamp)  # entries refreshed, still that tree's
        cache.set_mark(asked.token, asked.head)  # a new clean point
    cache.flush()
    return StatusResult(entries, asked.head, read.skipped, None, [], sorted(read.unreadable))


def _warn_unportable(
    repo: Repository, asked: Asked, entries: list[tuple[str, str]], warn: Callable[[str], None]
) -> None:
    """What the full status says of new paths that cannot exist on Windows or macOS, for
    the changed paths: their names, and case twins among them or beside them."""
    from vsync.model.portability import problems
    from vsync.model.snapshot import commit_tree

    added = [path for code, path in entries if code == "??"]
    if not added or asked.head is None:
        return
    gone = [path for code, path in entries if code == " D"]
    beside = case_twins_beside(repo, commit_tree(repo.gitdb, asked.head), added, gone)
    for path, why in problems(added, lambda _path: True, beside):
        warn(f"'{path}' {why}")


class ChangedCommit(NamedTuple):
    """What :func:`read_for_commit` read, for :func:`record_commit`."""

    head: bytes
    head_tree: bytes
    read: _Read | None  # None: no path changed
    total: int  # files in the snapshot (as far as the stat cache knows)


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

    if asked.changed is None or asked.head is None:
        return None
    head_tree = commit_tree(repo.gitdb, asked.head)
    total = asked.files
    if not asked.changed:
        return ChangedCommit(asked.head, head_tree, None, total)
    read = _read_changed(repo, cache, asked, warn, writer)
    if read is None:
        return None
    kept = (set(read.skipped) | set(read.unreadable)) & read.old.keys()
    total += len(read.new) + len(kept) - len(read.examined.old)
    return ChangedCommit(asked.head, head_tree, read, total)


def record_commit(
    repo: Repository,
    cache: StatCache,
    asked: Asked,
    got: ChangedCommit,
    writer: PackWriter,
    message: str,
    check: Check | None,
    portable: Portable | None = None,
) -> CommitResult:
    """Write the commit of what :func:`read_for_commit` read (its chunks sealed), its
    tree built from the branch's and the changed paths; the caller flushes the cache.
    ``portable``: the portability check, given the paths added or changed and the case
    twins of the added ones beside unchanged names (:func:`case_twins_beside`)."""
    from vsync.model.gitdb.tree_edit import edit_tree
    from vsync.ops.commit import CommitResult, advance_branch, make_commit
    from vsync.ops.status import clean_stamp

    read = got.read
    changes: dict[str, tuple[int, bytes] | None] = {}
    result = CommitResult(None, got.head, got.total, 0)
    result.chunks_new, result.bytes_new = writer.chunks_written, writer.bytes_written
    if read is not None:
        kept = set(read.skipped) | set(read.unreadable)  # they keep the commit's version
        changes = {p: e for p, e in read.new.items() if read.old.get(p) != e}
        changes.update((p, None) for p in read.old if p not in read.new and p not in kept)
        result.hashed = read.hashed
        result.skipped = read.skipped + read.unreadable
    whole = read is None or read.whole
    if not changes:
        if whole:
            cache.set_mark(asked.token, got.head)
            if _entries_are(cache, asked) and asked.stamp is not None:
                cache.set_stamp(asked.stamp)
        return result
    assert read is not None
    if check is not None:
        _check(repo, got.head_tree, read, changes, check)
    if portable is not None:
        added = [p for p, e in changes.items() if e is not None and p not in read.old]
        gone = [p for p, e in changes.items() if e is None]
        beside = case_twins_beside(repo, got.head_tree, added, gone)
        portable([p for p, e in changes.items() if e is not None], beside)
    tree_id, trees = edit_tree(repo.gitdb, got.head_tree, changes)
    c = make_commit(repo, tree_id, [got.head], message)
    objects = list(read.new_objects)
    stored = repo.gitdb.presence(len(trees))
    objects.extend(t for t in trees if t.id not in stored)
    objects.append(c)
    repo.gitdb.add(objects)
    subject = message.strip().splitlines()[0]
    advance_branch(repo, got.head, c.id, f"commit: {subject}")
    result.commit_id = c.id
    if whole:
        cache.set_mark(asked.token, c.id)
        if _entries_are(cache, asked):
            cache.set_stamp(clean_stamp(c.id, tree_id, read.ignore_fingerprint))
    return result


def _entries_are(cache: StatCache, asked: Asked) -> bool:
    """Whether the entries outside the changed paths are the commit's tree (its stamp
    held when the cache was loaded): then, with the changed paths read, they make the
    tree of the folder."""
    return asked.stamp is not None and cache.base().stamp == asked.stamp


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
