"""The working folder read straight into a git tree and the next stat cache, for a commit.

:func:`read_folder_tree` does what :func:`~vsync.model.folder_snapshot.read_working`
followed by :func:`~vsync.model.snapshot.build_tree` does, for a commit of the
whole folder, with memory and time that follow the changes rather than the
folder's size:

1. **Walk** the folder depth first in git's order (a folder's entries sorted by
   name, a folder's name taken as ``name/``), which is the order of full paths
   and so the order of the stat cache's entries. Each folder's files are
   matched against the cache by walking the cache file alongside (a merge, no
   path map): a run of files whose paths are the cache's next paths and whose
   lstat is the recorded one is copied record for record into the *next* cache
   in a few C-level operations. What the walk keeps for the whole folder is
   compact: the next cache's records and paths as bytes, a byte per entry for
   its git mode, and one small node per folder (where its files' records are,
   and its subfolders).
2. **Hash** what changed (new files, files whose lstat differs), small files in
   batches (:mod:`vsync.model.batchread`), larger ones streamed one after
   another through one pipeline (:mod:`vsync.model.ingest_files`), each under
   :mod:`vsync.model.stable_read`'s policy; their records are filled in and
   their new manifests go to a :class:`~vsync.model.gitdb.PackStream`.
3. **Build the trees** bottom-up. A folder in which nothing changed (no file
   hashed, added or gone anywhere under it) keeps the tree id the last commit
   has for it, read from that commit's trees, when the cache's clean stamp says
   its entries make the last commit's tree; only the folders on the way to a
   change get a new tree (to the same PackStream). Otherwise every tree is
   built (the same ids: tests/test_folder_tree.py), and a file whose entry
   matches its lstat is read again unless the branch's tree has that entry's
   id at its path (a status records ids it never stores).

Anything out of the ordinary (a folder or file that cannot be read, a file that
keeps changing while it is read, paths held back from a ``.git`` folder, a
stat cache still in state.db) raises :class:`Fallback`: the caller then reads
the folder with ``read_working``, whose rules for those cases are the
reference. Warnings are held until the read completes, so that a fallback
(which warns again) never says anything twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from array import array
from binascii import hexlify, unhexlify
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from itertools import accumulate, chain, compress, islice, repeat
from operator import attrgetter, itemgetter, methodcaller, ne
from pathlib import Path
from stat import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG
from typing import NamedTuple

from vsync.model.batchread import SMALL_MAX, BatchReader, FileRead
from vsync.model.folder_scan import MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE, WorkFile
from vsync.model.folder_snapshot import ProgressSink
from vsync.model.gitdb import (
    BLOB,
    TREE,
    GitDB,
    PackStream,
    RawObject,
    Tree,
    blob_id,
    blob_object,
)
from vsync.model.ignore import Ignore
from vsync.model.ingest import Ingester
from vsync.model.ingest_files import FileIngested, ingest_files
from vsync.model.paths import (
    CONTROL_NAME,
    TEMP_PREFIX,
    control_shaped,
    fold_name,
    nfc,
    reserved_reason,
    unicode_twin,
)
from vsync.model.repository import Repository
from vsync.model.statcache import (
    CACHE_FILE,
    KEY,
    NO_ID,
    RECORD,
    SMUDGED,
    FileStat,
    Mark,
    RawCache,
    Stamp,
    StatKey,
    file_identity,
    has_legacy_rows,
    is_racy,
    racy_ns,
    read_header,
    read_raw,
    stat_key,
    write_raw,
)
from vsync.store import faults
from vsync.store.chunkstore import PackWriter

RS = RECORD.size
ID_AT = RS - 20
MODES = (MODE_FILE, MODE_EXEC, MODE_LINK)  # a record's mode code -> git mode
_NAME = attrgetter("name")
_ALIAS_HEADS = frozenset(".vVgG")  # first character of a name reserved_reason may refuse


class Fallback(Exception):
    """The folder holds something :func:`read_folder_tree` leaves to ``read_working``."""


def _mode_code(st_mode: int) -> int:
    if S_IFMT(st_mode) == S_IFLNK:
        return 2
    return 1 if st_mode & 0o111 else 0


class _Node:
    """One folder of the walk: its direct files (record ranges) and subfolders, in git order."""

    __slots__ = ("rel", "segments", "tree_id")

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.segments: list[tuple[int, int] | _Node] = []
        self.tree_id: bytes | None = None  # hex, once built; None: no tracked file under it


class FolderTree(NamedTuple):
    """What :func:`read_folder_tree` read: the tree, and the stat cache to write."""

    tree_id: bytes  # hex
    files: int
    hashed: int
    ignore_fingerprint: bytes
    control: Path
    records: bytearray
    names: bytearray
    modes: bytearray
    offsets: array[int]
    ident: tuple[int, int, int] | None  # of the cache file read; None: there was none
    # With the branch's tree known to be the old cache's entries (its clean stamp): the
    # paths new to that tree, and those gone from it; None: not known, the whole tree
    # is to be looked at
    added: list[str] | None = None
    gone: list[str] | None = None

    def path(self, r: int) -> str:
        return self.names[self.offsets[r] : self.offsets[r + 1] - 1].decode("utf-8")

    def paths(self) -> list[str]:
        """Every file's path, in one decode."""
        if not self.files:
            return []
        return bytes(self.names[: self.offsets[self.files] - 1]).decode("utf-8").split("\0")

    def flat(self) -> dict[str, tuple[int, bytes]]:
        """``{path: (git mode, id)}`` of every file (for sync's mass-change check)."""
        out: dict[str, tuple[int, bytes]] = {}
        recs, modes = self.records, self.modes
        for r in range(self.files):
            oid = hexlify(recs[r * RS + ID_AT : (r + 1) * RS])
            out[self.path(r)] = (MODES[modes[r]], oid)
        return out

    def write_cache(self, stamp: Stamp | None, mark: Mark | None = None) -> None:
        """Write the stat cache these entries make (with ``stamp`` and the monitor
        ``mark``, unless another process rewrote the file since it was read: its entries
        are then replaced, its stamp and mark not kept)."""
        if file_identity(self.control / CACHE_FILE) != self.ident:
            stamp = mark = None
        elif mark is None:  # a write keeps the mark it found unless told another
            header = read_header(self.control / CACHE_FILE)
            mark = None if header is None else header[1]
        write_raw(self.control, self.records, self.names, self.files, stamp, mark)


def read_folder_tree(
    repo: Repository,
    ingester: Ingester,
    writer: PackWriter,
    stream: PackStream,
    head_tree: bytes | None,
    warn: Callable[[str], None],
    progress: ProgressSink | None = None,
) -> FolderTree:
    """Read the whole working folder into a tree (see the module docstring).

    New manifests and trees go to ``stream``, chunks to ``writer``. ``head_tree``
    is the branch's tree (None: no commit yet). Raises :class:`Fallback`.
    """
    if repo.holds.records:
        raise Fallback("held paths")
    reader = _Reader(repo, ingester, writer, stream, head_tree)
    result = reader.run(progress)
    for message in reader.warnings:
        warn(message)
    return result


class _OldCache:
    """The stat cache file read in path order (a cursor), for the walk's merge."""

    def __init__(self, raw: RawCache, on_gone: Callable[[bytes], None]) -> None:
        self.records = raw.records
        self.names = raw.names
        self.count = raw.entries
        self.i = 0  # next record
        self.pos = 0  # where its path starts in ``names``
        self.on_gone = on_gone
        self.key_at = KEY.unpack_from

    def take_run(self, joined: bytes, n: int) -> int | None:
        """If the next ``n`` paths are ``joined`` (NUL-terminated each), pass them; their first
        record number, else None."""
        if self.names.startswith(joined, self.pos):
            first = self.i
            self.i += n
            self.pos += len(joined)
            return first
        return None

    def seek(self, path: bytes) -> int | None:
        """Pass the paths before ``path`` (gone from the folder) and ``path`` itself if it
        is next; its record number, or None."""
        names = self.names
        while self.i < self.count:
            end = names.index(b"\0", self.pos)
            current = names[self.pos : end]
            if current > path:
                return None
            i = self.i
            self.i += 1
            self.pos = end + 1
            if current == path:
                return i
            self.on_gone(current)
        return None

    def finish(self) -> None:
        """Every path not passed yet is gone."""
        names = self.names
        while self.i < self.count:
            end = names.index(b"\0", self.pos)
            self.on_gone(names[self.pos : end])
            self.i += 1
            self.pos = end + 1


class _Reader:
    def __init__(
        self,
        repo: Repository,
        ingester: Ingester,
        writer: PackWriter,
        stream: PackStream,
        head_tree: bytes | None,
    ) -> None:
        self.repo = repo
        self.root = str(repo.require_worktree())
        self.racy_ns = racy_ns(self.root)
        self.ingester = ingester
        self.writer = writer
        self.stream = stream
        self.gitdb: GitDB = repo.gitdb
        self.head_tree = head_tree
        self.warnings: list[str] = []
        self.records = bytearray()
        self.names = bytearray()
        self.modes = bytearray()
        self.offsets = array("Q", [0])
        self.todo = array("Q")  # records to hash
        self.unverified = array("Q")  # cache hits whose object may not be stored
        self.dirty: set[str] = set()  # folders with a change somewhere under them
        self.nodes: list[_Node] = []  # in the walk's (pre-)order
        self.hashed = 0
        self._head_trees: dict[str, Tree | None] = {}
        # record -> the raw id of its entry in the branch's tree, for files read again
        # because their entry was smudged or their lstat changed (trusted cache only)
        self._stored_ids: dict[int, bytes] = {}
        self.added = array("Q")  # records of paths the old cache did not have
        self.gone: list[str] = []  # paths the old cache had and the folder has not

    # -- 1. the walk ---------------------------------------------------------------------

    def run(self, progress: ProgressSink | None) -> FolderTree:
        control = self.repo.control
        raw, ident = read_raw(control / CACHE_FILE)
        if raw is None:
            if has_legacy_rows(control):
                raise Fallback("stat cache in state.db")
            raw = RawCache(b"", b"", 0, None)
        ignore = Ignore(Path(self.root))
        self.ignore = ignore
        head = self.repo.head()
        # Entries under the clean stamp make the branch's tree: their ids are stored,
        # and a folder with no change keeps the tree id the branch has for it.
        self.trusted = (
            raw.stamp is not None
            and head is not None
            and raw.stamp[0] == unhexlify(head)
            and self.head_tree is not None
            and raw.stamp[1] == unhexlify(self.head_tree)
        )
        old = _OldCache(raw, self._gone)
        self._walk(old)
        old.finish()
        del old, raw
        faults.point("folder-scanned")
        if not self.trusted:
            self._verify_hits()
        self._hash(progress)
        root = self._build_trees()
        return FolderTree(
            tree_id=root,
            files=len(self.modes),
            hashed=self.hashed,
            ignore_fingerprint=ignore.fingerprint,
            control=control,
            records=self.records,
            names=self.names,
            modes=self.modes,
            offsets=self.offsets,
            ident=ident,
            added=[self.path(r) for r in self.added] if self.trusted else None,
            gone=self.gone if self.trusted else None,
        )

    def _dirty(self, folder: str) -> None:
        dirty = self.dirty
        while folder not in dirty:
            dirty.add(folder)
            if not folder:
                return
            folder = folder.rpartition("/")[0]

    def _gone(self, path: bytes) -> None:
        text = path.decode("utf-8")
        self.gone.append(text)
        self._dirty(text.rpartition("/")[0])

    def _walk(self, old: _OldCache) -> None:
        # Tasks, popped in git order: (disk path, node, parent) lists a folder;
        # (node, files) is a run of a folder's files.
        stack: list[_Task] = [(self.root, _Node(""), None)]
        ahead: dict[str, _Listing] = {}  # folders listed before their turn
        while stack:
            task = stack.pop()
            if len(task) == 3:
                disk, node, parent = task
                if parent is not None:
                    parent.segments.append(node)
                self.nodes.append(node)
                listing = ahead.pop(disk, None)
                if listing is None:
                    listing = self._list_ahead(disk, stack, ahead)
                stack.extend(reversed(self._list(disk, listing, node)))
            else:
                node, files = task
                self._run(node, files, old)

    @staticmethod
    def _list_ahead(disk: str, stack: list[_Task], ahead: dict[str, _Listing]) -> _Listing:
        """``disk``'s listing, listed with the next folders the walk will come to (the top
        of ``stack``) in one call on several threads (:func:`_list_folders`); theirs wait
        in ``ahead``."""
        folders = [disk]
        for task in islice(reversed(stack), 4 * LIST_AHEAD):
            if len(task) == 3 and task[0] not in ahead:
                folders.append(task[0])
                if len(folders) == LIST_AHEAD:
                    break
        listings = _list_folders(folders, LIST_AHEAD_ENTRIES)
        for folder, listing in zip(folders[1:], listings[1:], strict=True):
            if listing is not None:
                ahead[folder] = listing
        first = listings[0]
        assert first is not None  # the first folder is always listed
        return first

    def _list(self, disk: str, listing: _Listing, node: _Node) -> list[_Task]:
        """The tasks of one folder, in git order: its subfolders, and runs of its files."""
        rel = node.rel
        if isinstance(listing, (FileNotFoundError, NotADirectoryError)):
            return []  # gone since it was listed: what it held is gone too
        if isinstance(listing, OSError):
            what = "folder" if listing.filename == disk else "entry in"
            raise Fallback(f"unreadable {what} {rel!r}") from listing
        names, stats = listing  # a stat None: gone since its folder was listed
        on_disk = names
        ascii_only = "".join(names).isascii()
        if not ascii_only:
            kept = []
            for name, st in zip(names, stats, strict=True):
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    self.warnings.append(
                        f"skipping '{os.path.join(rel, name)!r}': name is not valid UTF-8"
                    )
                    continue
                kept.append((name, nfc(name), st))
            on_disk = [d for d, _n, _st in kept]
            names = [n for _d, n, _st in kept]
            stats = [st for _d, _n, st in kept]
        shaped = control_shaped(names)
        head = rel + "/" if rel else ""
        ignored = None if self.ignore.empty else self.ignore.ignored
        if (
            ascii_only
            and ignored is None
            and not shaped
            and _ALIAS_HEADS.isdisjoint(map(_FIRST, names))  # nor CONTROL_NAME, TEMP_PREFIX
            and None not in stats
        ):
            kinds = set(map(S_IFMT, map(_MODE, stats)))  # type: ignore[arg-type]  # no None
            if kinds <= _FILE_KINDS:  # the common folder: files only, nothing to leave out
                files = sorted(zip(names, stats, strict=True), key=_FIRST)
                return [(node, files)] if files else []  # type: ignore[list-item]
        children: list[tuple[str, str, StatKey | None, str]] = []  # key, name, st, disk
        seen: dict[str, str] | None = None if ascii_only else {}
        warnings = self.warnings
        for disk_name, name, st in zip(on_disk, names, stats, strict=True):
            if st is None or name == CONTROL_NAME or name.startswith(TEMP_PREFIX):
                continue
            kind = S_IFMT(st[4])
            if kind == S_IFDIR:
                is_dir = True
            elif kind in (S_IFREG, S_IFLNK):
                is_dir = False
            else:
                warnings.append(f"skipping '{head}{name}': not a regular file, folder or symlink")
                continue
            if ignored is not None and ignored(head + name, is_dir):
                continue
            if name[:1] in _ALIAS_HEADS or not name.isascii():
                reason = reserved_reason(name)
                if reason is not None:
                    warnings.append(f"skipping '{head}{name}': {reason}")
                    continue
            if shaped and fold_name(name) == "config":
                warnings.append(
                    f"skipping '{head}{name}': '{rel or '.'}' holds config, git and chunks, the "
                    "shape of a vsync repository, which vsync never records; rename one of them"
                )
                continue
            if seen is not None:
                if name in seen:
                    warnings.append(unicode_twin(head + name))
                    continue
                seen[name] = f"{disk}/{disk_name}"
            if is_dir:
                children.append((name + "/", name, None, f"{disk}/{disk_name}"))
            else:
                children.append((name, name, st, ""))
        children.sort(key=_FIRST)
        tasks: list[_Task] = []
        run: list[tuple[str, StatKey]] = []
        for _key, name, child_st, child_disk in children:
            if child_st is not None:
                run.append((name, child_st))
                continue
            if run:
                tasks.append((node, run))
                run = []
            tasks.append((child_disk, _Node(head + name), node))
        if run:
            tasks.append((node, run))
        return tasks

    def _run(self, node: _Node, files: list[tuple[str, StatKey]], old: _OldCache) -> None:
        """A run of ``node``'s files (consecutive in git order): records for the next cache."""
        rel = node.rel
        head = rel + "/" if rel else ""
        # (C-level maps: no bytecode runs per file)
        keys = list(map(_SECOND, files))
        encoded = list(map(_UTF8, map(head.__add__, map(_FIRST, files))))
        joined = b"\0".join(encoded) + b"\0"
        n = len(files)
        first = len(self.modes)
        base = len(self.names)
        ends = accumulate(map(_PLUS_ONE, map(len, encoded)), initial=base)
        next(ends)  # ``base`` itself is there already (the last record's end)
        self.offsets.extend(ends)
        self.names += joined
        self.modes.extend(map(_CODES.__getitem__, map(_FIFTH, keys)))
        node.segments.append((first, first + n))
        key_at, old_records = old.key_at, old.records
        start = old.take_run(joined, n)
        if start is not None:
            olds = list(map(key_at, repeat(old_records), range(start * RS, (start + n) * RS, RS)))
            records = self.records
            records += old_records[start * RS : (start + n) * RS]
            if not self.trusted:
                self.unverified.extend(range(first, first + n))
            if olds == keys:
                return
            # The same files, some changed: their records are replaced (no bytecode for
            # the others).
            for k in compress(range(n), map(ne, olds, keys)):
                r = first + k
                records[r * RS : (r + 1) * RS] = RECORD.pack(*keys[k], 0, NO_ID)
                self._changed(r, start + k, old_records, rel)
            return
        matches = [old.seek(e) for e in encoded]
        records = self.records
        for k, (i, key) in enumerate(zip(matches, keys, strict=True)):
            if i is not None and key_at(old_records, i * RS) == key:
                records += old_records[i * RS : (i + 1) * RS]
                if not self.trusted:
                    self.unverified.append(first + k)
            else:
                records += RECORD.pack(*key, 0, NO_ID)
                self._changed(first + k, i, old_records, rel)
                if i is None:
                    self.added.append(first + k)

    def _changed(self, r: int, i: int | None, old_records: bytes, folder: str) -> None:
        """Record ``r`` (the old cache's ``i``, if it had the path) is to be read."""
        self.todo.append(r)
        self._dirty(folder)
        if i is not None and self.trusted:  # its last id is the branch's: stored
            self._stored_ids[r] = old_records[i * RS + ID_AT : (i + 1) * RS]

    def _verify_hits(self) -> None:
        """Cache hits the clean stamp does not cover may name objects never stored (status
        hashes without storing; a commit may have died before storing): a hit is kept
        only when the branch's tree has that id at that path, else the file is hashed
        again (and its manifest stored)."""
        unverified, self.unverified = self.unverified, array("Q")
        if self.head_tree is None:
            self.todo.extend(unverified)
            return
        recs = self.records
        folder: str | None = None
        ids: dict[bytes, bytes] = {}
        for r in unverified:
            parent, _, name = self.path(r).rpartition("/")
            if parent != folder:
                folder = parent
                tree = self._head_tree(parent)
                ids = {} if tree is None else {item[0]: item[2] for item in tree.items}
            if ids.get(name.encode("utf-8")) != hexlify(recs[r * RS + ID_AT : (r + 1) * RS]):
                self.todo.append(r)

    # -- 2. hashing what changed -----------------------------------------------------------

    def path(self, r: int) -> str:
        return self.names[self.offsets[r] : self.offsets[r + 1] - 1].decode("utf-8")

    def _hash(self, sink: ProgressSink | None) -> None:
        recs, modes = self.records, self.modes
        small, large, links = array("Q"), array("Q"), array("Q")
        total = 0
        for r in self.todo:
            size = KEY.unpack_from(recs, r * RS)[0]
            total += size
            if modes[r] == 2:
                links.append(r)
            elif size <= SMALL_MAX:
                small.append(r)
            else:
                large.append(r)
        if sink is not None:
            sink.start(len(self.todo), total)
        if not self.todo:
            if sink is not None:
                sink.finish()
            return
        for r in links:
            self._link(r)
        if small:
            self._small(small, large, sink)
        if large:
            self._large(large, sink)
        if sink is not None:
            sink.finish()

    def _large(self, large: array[int], sink: ProgressSink | None) -> None:
        """Stream the files over SMALL_MAX through one pipeline, one after another."""
        recs, root = self.records, self.root

        def todo() -> Iterator[_TodoFile]:
            for r in large:
                path = self.path(r)
                st = FileStat(*KEY.unpack_from(recs, r * RS))
                yield _TodoFile(path, os.path.join(root, path), st, r)

        advance = sink.advance if sink is not None else None
        with closing(ingest_files(todo(), self.ingester, self.writer, advance)) as results:
            for got in results:
                self._settle_large(got, sink)

    def _settle_large(self, got: FileIngested[_TodoFile], sink: ProgressSink | None) -> None:
        wf = got.wf
        if got.unreadable:
            raise Fallback(f"unreadable {wf.path!r}")
        if got.manifest is None or got.st is None:
            raise Fallback(f"{wf.path!r} kept changing")
        raw = got.manifest.to_bytes()
        self._settle(wf.record, raw, blob_id(raw), got.st, got.hashed_at)
        if sink is not None:
            sink.file_done(wf.path)

    def _link(self, r: int) -> None:
        path = self.path(r)
        disk = os.path.join(self.root, path)
        key = KEY.unpack_from(self.records, r * RS)
        try:
            hashed_at = time.time_ns()
            target = os.readlink(disk)
            same = stat_key(os.lstat(disk)) == key
        except OSError as exc:
            raise Fallback(f"unreadable symlink {path!r}") from exc
        blob = blob_object(os.fsencode(target))
        mode = key[4] if same and not is_racy(key[1], key[2], hashed_at, self.racy_ns) else SMUDGED
        self.records[r * RS : (r + 1) * RS] = RECORD.pack(
            *key[:4], mode, hashed_at, unhexlify(blob.id)
        )
        self.hashed += 1
        if self._stored_ids.get(r) != unhexlify(blob.id):
            self.stream.add(blob)

    def _small(self, small: array[int], large: array[int], sink: ProgressSink | None) -> None:
        recs = self.records
        root = self.root

        def todo() -> Iterator[WorkFile]:
            for r in small:
                path = self.path(r)
                st = FileStat(*KEY.unpack_from(recs, r * RS))
                yield _TodoFile(path, os.path.join(root, path), st, r)

        def on_file(fr: FileRead) -> None:
            wf = fr.wf
            assert isinstance(wf, _TodoFile)
            if fr.grown:  # larger than the walk found (a download?): stream it
                large.append(wf.record)
                return
            if fr.unreadable:
                raise Fallback(f"unreadable {wf.path!r}")
            if fr.manifest is None or fr.st is None:
                raise Fallback(f"{wf.path!r} kept changing")
            self._settle(wf.record, fr.manifest, fr.blob_id, fr.st, fr.hashed_at)
            if sink is not None:
                sink.advance(wf.st.st_size)
                sink.file_done(wf.path)

        threads = max(2, os.cpu_count() or 2)
        config = self.repo.config
        with ThreadPoolExecutor(threads, thread_name_prefix="vsync-read") as pool:
            reader = BatchReader(config.chunker_params(), config.compression_level(), pool, threads)
            reader.read(todo(), self.writer, on_file)

    def _settle(self, r: int, raw: bytes, oid: bytes, st: os.stat_result, at: int) -> None:
        mode = SMUDGED if is_racy(st.st_mtime_ns, st.st_ctime_ns, at, self.racy_ns) else st.st_mode
        self.records[r * RS : (r + 1) * RS] = RECORD.pack(
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode, at, unhexlify(oid)
        )
        self.modes[r] = _mode_code(st.st_mode)
        self.hashed += 1
        # Unless the file was only read again (a smudged entry), the manifest is stored
        # even if some older pack has it (a file back to an older version): asking every
        # pack costs more than the few bytes of a manifest.
        if self._stored_ids.get(r) != unhexlify(oid):
            self.stream.add(RawObject(BLOB, oid, raw))

    # -- 3. the trees ---------------------------------------------------------------------

    def _build_trees(self) -> bytes:
        dirty, recs, modes, names, offsets = (
            self.dirty,
            self.records,
            self.modes,
            self.names,
            self.offsets,
        )
        trusted = self.trusted  # else every folder is built
        for node in reversed(self.nodes):
            rel = node.rel
            if trusted and rel not in dirty:
                entry = self._head_entry(rel)
                node.tree_id = entry[1] if entry is not None and entry[0] == MODE_TREE else None
                continue
            cut = len(rel.encode("utf-8")) + 1 if rel else 0
            items: list[bytes | bytearray] = []
            for seg in node.segments:
                if isinstance(seg, tuple):
                    a, b = seg
                    paths = names[offsets[a] : offsets[b] - 1].split(b"\0")
                    at = a * RS + ID_AT
                    ids = map(
                        recs.__getitem__,
                        map(slice, range(at, b * RS, RS), range(at + 20, b * RS + 20, RS)),
                    )
                    entries: Iterator[tuple[bytes, bytes, bytes, bytes | bytearray]] = zip(
                        map(_ENTRY_HEADS.__getitem__, modes[a:b]),
                        map(itemgetter(slice(cut, None)), paths),
                        repeat(b"\0"),
                        ids,
                    )
                    items.extend(chain.from_iterable(entries))
                elif seg.tree_id is not None:
                    name = seg.rel.rpartition("/")[2].encode("utf-8")
                    items.append(b"40000 %s\0%s" % (name, unhexlify(seg.tree_id)))
            if not items and rel:
                node.tree_id = None  # no tracked file under it: not in the tree
                continue
            body = b"".join(items)
            tree_id = hashlib.sha1(b"tree %d\0%s" % (len(body), body)).hexdigest().encode()
            node.tree_id = tree_id
            self.stream.add(RawObject(TREE, tree_id, body))  # (stored again if unchanged)
        root = self.nodes[0].tree_id
        assert root is not None
        return root

    def _head_tree(self, folder: str) -> Tree | None:
        """The branch's tree of ``folder`` ('': the root), or None if it has none."""
        memo = self._head_trees
        if folder not in memo:
            entry = self._head_entry(folder)
            memo[folder] = (
                self.gitdb.tree(entry[1]) if entry is not None and entry[0] == MODE_TREE else None
            )
        return memo[folder]

    def _head_entry(self, path: str) -> tuple[int, bytes] | None:
        """The (mode, id) the branch's tree has at ``path`` ('' : the root), or None."""
        if not path:
            return None if self.head_tree is None else (MODE_TREE, self.head_tree)
        parent, _, name = path.rpartition("/")
        tree = self._head_tree(parent)
        item = None if tree is None else tree.get(name.encode("utf-8"))
        return None if item is None else (item[1], item[2])


_Task = tuple[str, _Node, "_Node | None"] | tuple[_Node, list[tuple[str, StatKey]]]
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_FIFTH = itemgetter(4)
_UTF8 = methodcaller("encode", "utf-8")
_PLUS_ONE = (1).__add__
_ENTRY_HEADS = tuple(b"%o " % mode for mode in MODES)  # a tree entry's "<mode> "


class _ModeCodes(dict[int, int]):
    """st_mode -> mode code (index in MODES), computed once per distinct st_mode."""

    def __missing__(self, st_mode: int) -> int:
        code = self[st_mode] = _mode_code(st_mode)
        return code


_CODES = _ModeCodes()
_MODE = itemgetter(4)  # of a StatKey


_Listing = tuple[list[str], list[StatKey | None]] | OSError
LIST_AHEAD = 64  # folders listed in one call of _list_folders ...
LIST_AHEAD_ENTRIES = 16_384  # ... until they hold this many entries


def _list_folders_py(folders: list[str], entry_limit: int) -> list[_Listing | None]:
    """``os.listdir`` and :func:`_lstat_keys_py` of each folder, an OSError (not raised)
    for one that cannot be read, None for those after the first once the folders listed
    hold ``entry_limit`` entries (the reference for
    :func:`vsync.model._lstat_match.list_folders`, which lists them on threads)."""
    out: list[_Listing | None] = []
    entries = 0
    for folder in folders:
        if out and entries >= entry_limit:
            out.append(None)
            continue
        try:
            names = os.listdir(folder)
            out.append((names, _lstat_keys_py(folder, names)))
        except OSError as exc:
            out.append(exc)
            continue
        entries += len(names)
    return out


def _lstat_keys_py(folder: str, names: list[str]) -> list[StatKey | None]:
    """Each ``folder/name``'s lstat as a StatKey, None if it is gone (the reference for
    :func:`vsync.model._lstat_match.lstat_keys`, which does the same in C)."""
    out: list[StatKey | None] = []
    for name in names:
        try:
            st = os.stat(f"{folder}/{name}", follow_symlinks=False)
        except FileNotFoundError:
            out.append(None)
            continue
        out.append(stat_key(st))
    return out


try:
    from vsync.model._lstat_match import list_folders as _list_folders
except ImportError:  # built without a C compiler: the same in Python
    _list_folders = _list_folders_py
_FILE_KINDS = frozenset({S_IFREG, S_IFLNK})


class _TodoFile(WorkFile):
    __slots__ = ("record",)

    def __init__(self, path: str, disk: str, st: FileStat, record: int) -> None:
        super().__init__(path, disk, st)
        self.record = record
