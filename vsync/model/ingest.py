"""Turning file content into a manifest, storing the chunks it lacks.

The pipeline works a block (4 MiB) at a time, so per-chunk Python overhead
stays small:

1. a reading thread (:func:`read_ahead`, for files over two blocks; else
   the calling thread; for many files one after another, one thread reads
   them all: :mod:`vsync.model.ingest_files`) reads a block and cuts it into
   chunks (FastCDC; both the read and the cut release the GIL), the chunks
   staying views into the block's buffer: no copies;
2. a worker thread hashes the block's chunks (BLAKE3);
3. the calling thread looks the ids up and a worker compresses only the
   chunks the store lacks (zstd), as one batch;
4. the calling thread appends the batch to the pack with one ``writev``
   (the chunk store seals full packs on its own thread).

blake3 and zstandard release the GIL, so stages 1, 2 and 3 of successive
blocks run on both cores at once. At most ``depth`` blocks (one per worker
thread) are in flight in each stage, so memory stays flat whatever the file
size: with the read-ahead and the writes not yet done, a file holds at most
``3 * threads + 3`` block buffers plus those of half the pack writer's jobs in
flight (tests/test_transfer_memory.py checks that bound).
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, TypeVar

from vsync.model.manifest import FileTooLarge, Manifest
from vsync.store import codec
from vsync.store.chunker import BLOCK_SIZE, Chunker, ChunkerParams
from vsync.store.chunkstore import PackWriter, Record

Progress = Callable[[int], None]


def hash_block(views: list[memoryview]) -> list[bytes]:
    return [codec.chunk_id(v) for v in views]


def encode_block(chunks: list[tuple[bytes, memoryview]], level: int) -> list[Record]:
    """Compress a block's new chunks; after two raw ones in a row, each chunk is
    first judged by a sample (:func:`codec.encode`'s ``sample_first``)."""
    out: list[Record] = []
    raw_run = 0
    for cid, view in chunks:
        compression, payload = codec.encode(view, level, sample_first=raw_run >= 2)
        raw_run = raw_run + 1 if compression == codec.COMPRESSION_NONE else 0
        out.append((cid, len(view), compression, payload))
    return out


T = TypeVar("T")


class _Stopped(Exception):
    """The consumer left: the producer's ``put`` unwinds it."""


def produce_ahead(produce: Callable[[Callable[[T], None]], None], depth: int) -> Iterator[T]:
    """Run ``produce(put)`` on a thread of its own; iterate what it puts, up to
    ``depth`` items ahead.

    Whatever the producer raises is raised here; leaving the loop early makes the
    producer's next ``put`` raise (so it unwinds) and stops the thread before this
    returns.
    """
    q: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def put_or_stop(item: T) -> None:
        if not put(item):
            raise _Stopped

    def run() -> None:
        try:
            produce(put_or_stop)
            put(done)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the consuming thread
            put(_Failed(exc))

    thread = threading.Thread(target=run, name="vsync-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """Iterate ``items`` on a thread of its own, up to ``depth`` items ahead.

    For a large file the calling thread's share of the pipeline (reading and
    cutting each block, then lookups and queueing writes) is the longest
    stage; with the read and the cut on this thread the two halves overlap.
    Whatever the reading raises is raised here; leaving the loop early stops
    the thread before this returns.
    """

    def produce(put: Callable[[T], None]) -> None:
        for item in items:
            put(item)

    return produce_ahead(produce, depth)


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _size_hint(stream: BinaryIO) -> int:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 0


class Ingester:
    def __init__(self, params: ChunkerParams, level: int, threads: int | None = None) -> None:
        self.chunker = Chunker(params)
        self.level = level
        self.threads = threads or max(2, os.cpu_count() or 2)
        # One block per worker in each stage keeps every worker busy: more only
        # held more buffers (two per worker measured no faster, 4 MiB dearer each).
        self.depth = self.threads
        self._pool: ThreadPoolExecutor | None = None
        # Block buffers whose chunks are all settled, reused by the next blocks
        # (and the next files): fresh memory costs page faults on every block.
        self.spare: list[bytearray] = []

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vsync-chunk")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Ingester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(
        self, stream: BinaryIO, writer: PackWriter | None, progress: Progress | None = None
    ) -> Manifest:
        """Chunk ``stream``; store new chunks through ``writer`` (None: only hash)."""
        manifest = Manifest()
        stages = Stages(self, writer, progress)
        blocks = self.chunker.blocks(stream, spare=self.spare)
        if _size_hint(stream) > 2 * BLOCK_SIZE:
            blocks = read_ahead(blocks, self.depth)
        for block, views in blocks:
            stages.block(block, views, manifest)
        stages.finish()
        return manifest

    def trim_spare(self) -> None:
        """Keep enough block buffers for the next file, free the rest."""
        del self.spare[self.depth + 2 :]


Mark = Callable[[], None]
_Hashing = tuple[bytearray, list[memoryview], "Future[list[bytes]]", Manifest, str]


class Stages:
    """The stages after the cut, shared by the blocks of one file or of many files one
    after another (:mod:`vsync.model.ingest_files`), so that the next file's first
    blocks are hashed while the last file's are compressed: blocks are hashed on the
    pool, their ids appended to their file's manifest in order and looked up, and the
    new chunks compressed on the pool and handed to the writer, in order.

    A *mark* (:meth:`mark`) runs on the calling thread once every block given before
    it has been hashed and appended to its manifest."""

    def __init__(
        self, ingester: Ingester, writer: PackWriter | None, progress: Progress | None
    ) -> None:
        self.ingester = ingester
        self.writer = writer
        self.progress = progress
        self.pool = ingester.pool
        self.depth = ingester.depth
        self.level = ingester.level
        self.spare = ingester.spare
        self.hashing: deque[_Hashing | Mark] = deque()
        self.blocks_hashing = 0
        self.encoding: deque[tuple[bytearray, list[bytes], Future[list[Record]]]] = deque()
        self.queued: set[bytes] = set()  # being compressed, not yet in the writer

    def block(
        self, block: bytearray, views: list[memoryview], manifest: Manifest, path: str = ""
    ) -> None:
        """Hash ``block``'s chunks ``views`` into ``manifest``, storing the new ones
        (``path``: the file's, named by :class:`FileTooLarge`)."""
        self.hashing.append((block, views, self.pool.submit(hash_block, views), manifest, path))
        self.blocks_hashing += 1
        while self.blocks_hashing > self.depth:
            self._settle_hash()
        while len(self.encoding) > self.depth:
            self._settle_encode()

    def mark(self, done: Mark) -> None:
        """Call ``done`` once every block given so far is in its manifest."""
        if self.blocks_hashing:
            self.hashing.append(done)
        else:
            done()

    def finish(self) -> None:
        """Settle every block given (their chunks handed to the writer)."""
        while self.hashing:
            self._settle_hash()
        while self.encoding:
            self._settle_encode()
        self.ingester.trim_spare()

    def _settle_hash(self) -> None:
        item = self.hashing.popleft()
        if callable(item):
            item()
            return
        block, views, fut, manifest, path = item
        self.blocks_hashing -= 1
        ids = fut.result()
        try:
            for view, cid in zip(views, ids, strict=True):
                manifest.append(cid, len(view))
        except FileTooLarge:
            raise FileTooLarge(path) from None
        if self.progress is not None:
            self.progress(sum(len(v) for v in views))
        new: list[tuple[bytes, memoryview]] = []
        writer, queued = self.writer, self.queued
        if writer is not None:
            known = writer.known_many([cid for cid in ids if cid not in queued])
            for view, cid in zip(views, ids, strict=True):
                if cid not in known and cid not in queued:
                    queued.add(cid)
                    new.append((cid, view))
        if new:
            batch = [cid for cid, _view in new]
            self.encoding.append((block, batch, self.pool.submit(encode_block, new, self.level)))
        else:
            self.spare.append(block)
        while self.hashing and callable(self.hashing[0]):  # marks due now
            mark = self.hashing.popleft()
            assert callable(mark)
            mark()

    def _settle_encode(self) -> None:
        block, batch, fut = self.encoding.popleft()
        writer, spare = self.writer, self.spare
        assert writer is not None
        records = fut.result()
        if any(compression == codec.COMPRESSION_NONE for _c, _n, compression, _p in records):
            # The block's buffer is reused only once its raw payloads are written.
            writer.add_many(records, lambda: spare.append(block), checked=True)
        else:  # every payload is a compressed copy: the buffer is free now
            writer.add_many(records, checked=True)
            spare.append(block)
        self.queued.difference_update(batch)
