"""Reading many small files at once: a thread pool works on batches of files.

For a folder of thousands of small files the per-file cost of the streaming
:class:`~vsync.model.ingest.Ingester` (a block buffer and several futures per
file) dominates. Here a worker thread takes a whole batch of files and, for
each, opens, reads, cuts (FastCDC, the same :class:`Chunker` as the Ingester,
so a file's manifest is identical whichever path read it) and hashes it
(BLAKE3). The calling thread then looks the batch's chunk ids up in the store
(SQLite stays on its own thread) and a worker compresses the new chunks of
the batch (zstd) before the calling thread appends them to the pack. blake3,
zstandard, FastCDC and file reads release the GIL, so both cores work.

Each file is read whole under the one policy of :mod:`vsync.model.stable_read`
(read again while it changes, reported as unstable if it keeps changing), but
never more than the size the scan found plus one byte (enough to notice
growth): a file that has grown since (a download in progress) is handed back
as ``grown``, for the streaming reader, never read whole at its new size.
"""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from vsync.model.folder_scan import WorkFile
from vsync.model.gitdb import blob_id
from vsync.model.manifest import Manifest
from vsync.model.stable_read import read_stable
from vsync.store import codec
from vsync.store.chunker import BLOCK_SIZE, Chunker, ChunkerParams
from vsync.store.chunkstore import PackWriter

BATCH_FILES = 128
BATCH_BYTES = 8 * 1024 * 1024
# Files up to this size are read whole in one go; larger ones are left to the
# streaming Ingester (memory stays bounded by the batch limits).
SMALL_MAX = 1024 * 1024


@dataclass(slots=True)
class FileRead:
    """One file's outcome: ``manifest`` is None when it kept changing (or vanished)."""

    wf: WorkFile
    manifest: bytes | None = None  # Manifest.to_bytes()
    blob_id: bytes = b""  # git blob id (hex) of the manifest
    st: os.stat_result | None = None
    hashed_at: int = 0
    size: int = 0
    grown: bool = False  # larger than the scan found: to be read by streaming
    unreadable: str = ""  # why it could not be opened (permission), if it could not


@dataclass(slots=True)
class _Batch:
    files: list[FileRead]
    chunks: list[tuple[bytes, bytes]]  # (id, raw bytes) of every chunk, in order


class BatchReader:
    """Reads, cuts and hashes small files in batches on a thread pool."""

    def __init__(
        self, params: ChunkerParams, level: int, pool: ThreadPoolExecutor, threads: int
    ) -> None:
        self.params = params
        self.level = level
        self.pool = pool
        self.depth = threads  # batches being read, and being compressed, at once
        self._local = threading.local()

    # -- worker side ---------------------------------------------------------------

    def _chunker(self) -> tuple[Chunker, list[bytearray]]:
        local = self._local
        chunker: Chunker | None = getattr(local, "chunker", None)
        if chunker is None:
            chunker = local.chunker = Chunker(self.params)
            local.spare = []
        return chunker, local.spare

    def _cut(self, data: bytes) -> list[bytes]:
        """The content-defined chunks of ``data`` (a whole file)."""
        if not data:
            return []
        if len(data) <= self.params.min_size:
            return [data]  # FastCDC never cuts before min_size
        chunker, spare = self._chunker()
        out: list[bytes] = []
        stream = io.BytesIO(data)
        for block, views in chunker.blocks(stream, BLOCK_SIZE, spare):
            out.extend(bytes(v) for v in views)
            spare.append(block)
        return out

    def _read_one(self, fr: FileRead, chunks: list[tuple[bytes, bytes]]) -> None:
        try:
            read = read_stable(fr.wf.disk, _planned_reader(fr.wf.st.st_size))
        except _Grown:
            fr.grown = True
            return
        except PermissionError as exc:
            fr.unreadable = exc.strerror or "permission denied"
            return
        if read is None:
            return
        data, st, hashed_at = read
        manifest = Manifest()
        for piece in self._cut(data):
            cid = codec.chunk_id(piece)
            manifest.append(cid, len(piece))
            chunks.append((cid, piece))
        raw = manifest.to_bytes()
        fr.manifest, fr.blob_id = raw, blob_id(raw)
        fr.st, fr.hashed_at, fr.size = st, hashed_at, len(data)

    def _read_batch(self, files: list[WorkFile]) -> _Batch:
        batch = _Batch([FileRead(wf) for wf in files], [])
        for fr in batch.files:
            self._read_one(fr, batch.chunks)
        return batch

    # -- calling thread --------------------------------------------------------------

    def read(
        self,
        files: Iterable[WorkFile],
        writer: PackWriter | None,
        on_file: Callable[[FileRead], None],
    ) -> None:
        """Read ``files``; store their new chunks through ``writer`` (None: only hash).

        ``on_file`` is called on this thread for each file once its chunks are
        handed to the writer (in batch order, not necessarily input order).
        An OSError reading a file (other than it vanishing or refusing to be
        opened: ``FileRead.unreadable``) is raised here.
        """
        reading: deque[Future[_Batch]] = deque()
        encoding: deque[tuple[_Batch, list[bytes], Future[list[tuple[bytes, int, int, bytes]]]]]
        encoding = deque()
        queued: set[bytes] = set()
        level = self.level

        def settle_read() -> None:
            batch = reading.popleft().result()
            if writer is None:
                for fr in batch.files:
                    on_file(fr)
                return
            ids = [cid for cid, _data in batch.chunks if cid not in queued]
            known = writer.known_many(ids) if ids else set()
            new: list[tuple[bytes, bytes]] = []
            for cid, data in batch.chunks:
                if cid not in known and cid not in queued:
                    queued.add(cid)
                    new.append((cid, data))
            batch.chunks = []
            if not new:
                for fr in batch.files:
                    on_file(fr)
                return
            ids_new = [cid for cid, _data in new]
            encoding.append((batch, ids_new, self.pool.submit(_encode, new, level)))

        def settle_encode() -> None:
            batch, ids_new, fut = encoding.popleft()
            assert writer is not None
            writer.add_many(fut.result())
            queued.difference_update(ids_new)
            for fr in batch.files:
                on_file(fr)

        try:
            for part in _batches(files):
                reading.append(self.pool.submit(self._read_batch, part))
                while len(reading) > self.depth:
                    settle_read()
                while len(encoding) > self.depth:
                    settle_encode()
            while reading:
                settle_read()
                while len(encoding) > self.depth:
                    settle_encode()
            while encoding:
                settle_encode()
        except BaseException:
            for pending in reading:
                pending.cancel()
            for _b, _ids, encoded in encoding:
                encoded.cancel()
            raise


def _encode(chunks: list[tuple[bytes, bytes]], level: int) -> list[tuple[bytes, int, int, bytes]]:
    out = []
    for cid, data in chunks:
        compression, payload = codec.encode(data, level)
        out.append((cid, len(data), compression, bytes(payload)))
    return out


def _batches(files: Iterable[WorkFile]) -> Iterator[list[WorkFile]]:
    part: list[WorkFile] = []
    size = 0
    for wf in files:
        part.append(wf)
        size += wf.st.st_size
        if len(part) >= BATCH_FILES or size >= BATCH_BYTES:
            yield part
            part, size = [], 0
    if part:
        yield part


class _Grown(Exception):
    """The file is larger than the size its read was planned for."""


def _planned_reader(planned: int) -> Callable[[int, os.stat_result], tuple[bytes, int]]:
    """A whole-file read that never takes more than ``planned`` bytes (+1 to see growth)."""

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        if st.st_size > planned:
            raise _Grown
        data = _read_all(fd, planned)
        if len(data) > planned:
            raise _Grown
        return data, len(data)

    return read


def _read_all(fd: int, expected: int) -> bytes:
    """What ``fd`` holds, up to one byte past ``expected`` (enough to notice growth)."""
    data = os.read(fd, expected + 1)
    if len(data) >= expected:
        return data
    parts = [data]
    got = len(data)
    while got <= expected:
        more = os.read(fd, expected + 1 - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
