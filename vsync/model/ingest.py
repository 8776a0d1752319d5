"""Turning file content into a manifest, storing the chunks it lacks.

The pipeline: the calling thread reads and cuts the stream (FastCDC), a pool
of worker threads hashes each chunk (BLAKE3), the calling thread looks each
id up, and the pool compresses only the chunks the store lacks (zstd). Both
libraries release the GIL. At most ``depth`` chunks are in flight in each
stage, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from vsync.model.manifest import Manifest
from vsync.store import codec
from vsync.store.chunker import Chunker, ChunkerParams
from vsync.store.chunkstore import PackWriter

Progress = Callable[[int], None]


class Ingester:
    def __init__(self, params: ChunkerParams, level: int, threads: int | None = None) -> None:
        self.chunker = Chunker(params)
        self.level = level
        self.threads = threads or max(2, os.cpu_count() or 2)
        self.depth = 8 * self.threads
        self._pool: ThreadPoolExecutor | None = None

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
        hashing: deque[tuple[bytes, Future[bytes]]] = deque()
        encoding: deque[tuple[bytes, int, Future[tuple[int, bytes]]]] = deque()
        pool = self.pool
        level = self.level

        def settle_hash() -> None:
            data, fut = hashing.popleft()
            cid = fut.result()
            manifest.append(cid, len(data))
            if progress is not None:
                progress(len(data))
            if (
                writer is not None
                and not writer.known(cid)
                and not any(e[0] == cid for e in encoding)
            ):
                encoding.append((cid, len(data), pool.submit(codec.encode, data, level)))

        def settle_encode() -> None:
            cid, raw_len, fut = encoding.popleft()
            compression, payload = fut.result()
            assert writer is not None
            writer.add(cid, raw_len, compression, payload)

        for data in self.chunker.chunks(stream):
            hashing.append((data, pool.submit(codec.chunk_id, data)))
            if len(hashing) > self.depth:
                settle_hash()
            while len(encoding) > self.depth:
                settle_encode()
        while hashing:
            settle_hash()
        while encoding:
            settle_encode()
        return manifest
