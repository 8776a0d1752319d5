"""The working folder as a flat map of git entries, hashing only what changed.

The folder is walked by :mod:`vsync.model.folder_scan`.

Regular files whose stat matches the stat cache reuse their manifest id;
the rest are read through the :class:`Ingester` (small ones in batches,
:mod:`vsync.model.batchread`, larger ones one after another through one
pipeline, :mod:`vsync.model.ingest_files`), each under the policy of
:mod:`vsync.model.stable_read`: a file that keeps changing while it is read
is skipped with a warning, so a snapshot never holds torn content.
Files and folders that cannot be read (permissions) are skipped with a
warning and listed in ``WorkingState.unreadable``: their content is unknown,
so :func:`keep_unreadable` keeps what the last commit has under them.
"""

from __future__ import annotations

import contextlib
import os
import time
from binascii import unhexlify
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISLNK

from vsync.model.batchread import SMALL_MAX, BatchReader, FileRead
from vsync.model.folder_scan import MODE_EXEC, MODE_FILE, MODE_LINK, WorkFile, git_mode_of, scan
from vsync.model.gitdb import BLOB, Presence, RawObject, blob_id, blob_object
from vsync.model.ignore import Ignore
from vsync.model.ingest import Ingester
from vsync.model.ingest_files import ingest_files
from vsync.model.paths import is_under
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry, FlatMap
from vsync.model.statcache import Stat, StatCache, stat_key
from vsync.store import faults
from vsync.store.chunkstore import PackWriter


class ProgressSink:
    """Receives progress of a working-folder read; the UI layer renders it."""

    def start(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str) -> None: ...
    def finish(self) -> None: ...


@dataclass
class WorkingState:
    flat: FlatMap
    files: dict[str, WorkFile]
    new_objects: list[RawObject] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # files and folders that could not be read ('' the whole folder): neither
    # in ``flat`` nor known to be gone
    unreadable: list[str] = field(default_factory=list)
    hashed: int = 0
    cache: StatCache | None = None
    # held back paths (holdback) still as their hold left them: path -> (the
    # tree's entry, which ``flat`` holds, and what the folder really has)
    held: dict[str, tuple[Entry, Entry | None]] = field(default_factory=dict)
    whole: bool = True  # the whole folder was read (no ``prefixes``)
    ignore_fingerprint: bytes = b""  # of the ignore rules the scan followed

    @property
    def stampable(self) -> bool:
        """Whether the stat cache's entries are now exactly ``flat`` (a clean stamp may
        name it): the whole folder read, nothing skipped, unreadable or held back."""
        return self.whole and not (self.skipped or self.unreadable or self.held)


def read_working(
    repo: Repository,
    ingester: Ingester,
    warn: Callable[[str], None],
    writer: PackWriter | None = None,
    progress: ProgressSink | None = None,
    prefixes: list[str] | None = None,
    flush: bool = True,
    cache: StatCache | None = None,
    only: dict[str, WorkFile] | None = None,
) -> WorkingState:
    """Scan and hash the working folder. With a ``writer``, store what is new.

    The stat cache learns what was hashed; it is written unless ``flush`` is
    false (the caller then flushes ``state.cache``, maybe with a clean stamp).
    ``only``: hash these files (the fsmonitor's changed paths, found by the caller)
    instead of scanning; the cache then forgets nothing and holds are not applied."""
    root = repo.require_worktree()
    unreadable: list[str] = []
    ignore = Ignore(root)
    if only is None:
        files = scan(root, warn, prefixes, unreadable, ignore)
        faults.point("folder-scanned")
    else:
        files = only
    if cache is None:
        cache = StatCache(repo.control)
    gitdb = repo.gitdb
    state = WorkingState({}, files, cache=cache, unreadable=unreadable)
    state.whole = prefixes is None and only is None
    state.ignore_fingerprint = ignore.fingerprint
    flat = state.flat
    todo: list[WorkFile] = []
    unverified: list[tuple[str, int, bytes]] = []  # cache hits whose manifest may be unstored
    stored: Presence | None = None
    lookup, from_stamp = cache.lookup, cache.from_stamp
    # Entries the clean stamp covers name objects of the branch's tree, which are stored.
    stamp = cache.base().stamp
    committed = writer is not None and stamp is not None and _head_raw(repo) == stamp[0]
    for path, wf in files.items():
        st = wf.st
        st_mode = st.st_mode
        if S_ISLNK(st_mode):
            cached = lookup(path, st)
            if cached is not None and writer is None:
                flat[path] = (MODE_LINK, cached)
                continue
            try:
                hashed_at = time.time_ns()
                target = os.readlink(wf.disk)
            except OSError as exc:
                warn(f"skipping '{path}': {exc.strerror}")
                state.skipped.append(path)
                continue
            blob = blob_object(os.fsencode(target))
            flat[path] = (MODE_LINK, blob.id)
            with contextlib.suppress(OSError):
                if stat_key(os.lstat(wf.disk)) == stat_key(st):  # not replaced meanwhile
                    cache.record(path, st, blob.id, hashed_at)
            if writer is not None and not gitdb.has(blob.id):
                state.new_objects.append(blob)
            continue
        mode = MODE_EXEC if st_mode & 0o111 else MODE_FILE
        cached = lookup(path, st)
        if cached is None:
            todo.append(wf)
        elif writer is None or (committed and from_stamp(path)):
            flat[path] = (mode, cached)  # (in the branch's tree, so stored)
        else:
            unverified.append((path, mode, cached))
    if unverified:
        # A cached manifest may never have been stored (status hashes without
        # storing; a commit may have died before writing its objects): reuse
        # it only when the object store has it. Most are in the last commit.
        stored = gitdb.presence(len(files))
        for path, mode, cached in unverified:
            if cached in stored:
                flat[path] = (mode, cached)
            else:
                todo.append(files[path])
    seen_blobs: set[bytes] = set()
    if writer is not None and todo and stored is None:
        stored = gitdb.presence(len(todo))

    def settle(wf: WorkFile, raw: bytes, oid: bytes, st: os.stat_result, at: int) -> None:
        flat[wf.path] = (git_mode_of(st), oid)
        state.hashed += 1
        cache.record(wf.path, st, oid, at)
        if stored is not None and oid not in seen_blobs and oid not in stored:
            seen_blobs.add(oid)
            state.new_objects.append(RawObject(BLOB, oid, raw))

    small = [wf for wf in todo if wf.st.st_size <= SMALL_MAX]
    large = [wf for wf in todo if wf.st.st_size > SMALL_MAX]
    if progress is not None:
        progress.start(len(todo), sum(wf.st.st_size for wf in todo))
    if small:

        def on_file(fr: FileRead) -> None:
            wf = fr.wf
            if fr.grown:  # larger than the scan found (a download?): stream it
                large.append(wf)
                return
            if fr.unreadable:
                warn(f"skipping unreadable '{wf.path}': {fr.unreadable}")
                unreadable.append(wf.path)
            elif fr.manifest is None or fr.st is None:
                warn(f"skipping '{wf.path}': it kept changing while it was read")
                state.skipped.append(wf.path)
            else:
                settle(wf, fr.manifest, fr.blob_id, fr.st, fr.hashed_at)
            if progress is not None:
                progress.advance(wf.st.st_size)
                progress.file_done(wf.path)

        threads = max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(threads, thread_name_prefix="vsync-read") as pool:
            reader = BatchReader(
                repo.config.chunker_params(), repo.config.compression_level(), pool, threads
            )
            reader.read(small, writer, on_file)
    advance = progress.advance if progress is not None else None
    with closing(ingest_files(large, ingester, writer, advance)) as results:
        for got in results:
            wf = got.wf
            if got.unreadable:
                warn(f"skipping unreadable '{wf.path}': {got.unreadable}")
                unreadable.append(wf.path)
                continue
            if got.manifest is None or got.st is None:
                warn(f"skipping '{wf.path}': it kept changing while it was read")
                state.skipped.append(wf.path)
                continue
            raw = got.manifest.to_bytes()
            settle(wf, raw, blob_id(raw), got.st, got.hashed_at)
            if progress is not None:
                progress.file_done(wf.path)
    if only is None:
        for path in cache.paths():
            if path not in files and (prefixes is None or any(is_under(path, p) for p in prefixes)):
                cache.forget(path)
        _apply_holds(repo, state, root, prefixes)
    if progress is not None:
        progress.finish()
    if flush:
        cache.flush()
    return state


def _head_raw(repo: Repository) -> bytes | None:
    head = repo.head()
    return None if head is None else unhexlify(head)


def keep_unreadable(flat: FlatMap, unreadable: list[str], old: FlatMap) -> None:
    """Put back in ``flat`` every entry of ``old`` (the last commit) under an unreadable path.

    A file that cannot be read now is not a file deleted: it keeps the version
    the last commit has, so that no commit records, and no peer then applies,
    a deletion nobody made.
    """
    if not unreadable:
        return
    for path, entry in old.items():
        if any(is_under(path, u) for u in unreadable):
            flat[path] = entry


def _apply_holds(
    repo: Repository, state: WorkingState, root: Path, prefixes: list[str] | None
) -> None:
    """A held path whose disk is as its hold left it reads as the tree's entry."""
    holds = repo.holds
    for path in holds.records:
        if prefixes is not None and not any(is_under(path, p) for p in prefixes):
            continue
        wf = state.files.get(path)
        if wf is not None:
            st: Stat | None = wf.st
        else:
            try:
                st = os.lstat(os.path.join(root, *path.split("/")))
            except (FileNotFoundError, NotADirectoryError):
                st = None
        target = holds.effective(path, st)
        if target is not None:
            state.held[path] = (target, state.flat.get(path))
            state.flat[path] = target
