"""The working folder as a flat map of git entries, hashing only what changed.

Regular files whose stat matches the stat cache reuse their manifest id;
the rest are read through the :class:`Ingester`. A file that changes while
it is read is read again, and skipped with a warning if it keeps changing,
so a snapshot never holds torn content.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dulwich.objects import Blob, ShaFile

from vsync.model.ingest import Ingester
from vsync.model.manifest import Manifest
from vsync.model.paths import is_under
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap
from vsync.model.statcache import StatCache, stat_key
from vsync.model.worktree import WorkFile, scan
from vsync.store.chunkstore import PackWriter

READ_ATTEMPTS = 3


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
    new_objects: list[ShaFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    hashed: int = 0
    cache: StatCache | None = None


def read_working(
    repo: Repository,
    ingester: Ingester,
    warn: Callable[[str], None],
    writer: PackWriter | None = None,
    progress: ProgressSink | None = None,
    prefixes: list[str] | None = None,
) -> WorkingState:
    """Scan and hash the working folder. With a ``writer``, store what is new."""
    root = repo.require_worktree()
    files = scan(root, warn, prefixes)
    cache = StatCache(repo.db)
    object_store = repo.git.object_store
    state = WorkingState({}, files, cache=cache)
    todo: list[WorkFile] = []
    for path, wf in files.items():
        if wf.is_link:
            try:
                target = os.readlink(wf.disk)
            except OSError as exc:
                warn(f"skipping '{path}': {exc.strerror}")
                state.skipped.append(path)
                continue
            blob = Blob.from_string(os.fsencode(target))
            state.flat[path] = (wf.mode, blob.id)
            if writer is not None and blob.id not in object_store:
                state.new_objects.append(blob)
            continue
        cached = cache.lookup(path, wf.st)
        if cached is not None and (writer is None or cached in object_store):
            state.flat[path] = (wf.mode, cached)
        else:
            todo.append(wf)
    if progress is not None:
        progress.start(len(todo), sum(wf.st.st_size for wf in todo))
    seen_blobs: set[bytes] = set()
    for wf in todo:
        result = _read_stable(wf, ingester, writer, progress)
        if result is None:
            warn(f"skipping '{wf.path}': it kept changing while it was read")
            state.skipped.append(wf.path)
            continue
        manifest, st, hashed_at = result
        blob = Blob.from_string(manifest.to_bytes())
        mode = wf.mode if st.st_mode == wf.st.st_mode else WorkFile(wf.path, wf.disk, st).mode
        state.flat[wf.path] = (mode, blob.id)
        state.hashed += 1
        cache.record(wf.path, st, blob.id, hashed_at)
        if writer is not None and blob.id not in seen_blobs and blob.id not in object_store:
            seen_blobs.add(blob.id)
            state.new_objects.append(blob)
        if progress is not None:
            progress.file_done(wf.path)
    for path in cache.paths():
        in_scope = prefixes is None or any(is_under(path, p) for p in prefixes)
        if in_scope and path not in files:
            cache.forget(path)
    if progress is not None:
        progress.finish()
    cache.flush()
    return state


def _read_stable(
    wf: WorkFile, ingester: Ingester, writer: PackWriter | None, progress: ProgressSink | None
) -> tuple[Manifest, os.stat_result, int] | None:
    adv = progress.advance if progress is not None else None
    for _attempt in range(READ_ATTEMPTS):
        hashed_at = time.time_ns()
        try:
            with open(wf.disk, "rb") as f:
                before = os.fstat(f.fileno())
                manifest = ingester.ingest(f, writer, adv)
                after = os.fstat(f.fileno())
            now = os.lstat(wf.disk)
        except FileNotFoundError:
            return None
        if stat_key(before) == stat_key(after) == stat_key(now) and manifest.size == after.st_size:
            return manifest, after, hashed_at
    return None
