"""Chunk encoding: BLAKE3-256 ids and zstd compression, safe to call from threads.

blake3 and zstandard release the GIL, so these run in parallel worker threads.
"""

from __future__ import annotations

import threading

import blake3
import zstandard

from vsync.errors import ChunkCorrupt

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1

_local = threading.local()


def chunk_id(data: bytes | memoryview) -> bytes:
    """The BLAKE3-256 digest of a chunk's raw bytes: its id."""
    return blake3.blake3(data).digest()


def content_hasher() -> blake3.blake3:
    """A streaming BLAKE3-256 hasher (``update``, ``hexdigest``) for a whole file's bytes."""
    return blake3.blake3()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def encode(data: bytes, level: int) -> tuple[int, bytes]:
    """Compress a chunk; keep it raw when zstd saves less than 1/32 of it."""
    packed = _compressor(level).compress(data)
    if len(packed) >= len(data) - len(data) // 32:
        return COMPRESSION_NONE, data
    return COMPRESSION_ZSTD, packed


def decode(compression: int, payload: bytes, raw_len: int, cid: bytes, where: str) -> bytes:
    """Decompress a stored chunk and verify it against its id."""
    if compression == COMPRESSION_NONE:
        data = payload
    elif compression == COMPRESSION_ZSTD:
        try:
            data = _decompressor().decompress(payload, max_output_size=raw_len)
        except zstandard.ZstdError as exc:
            raise ChunkCorrupt(cid, f"{where}: zstd: {exc}") from None
    else:
        raise ChunkCorrupt(cid, f"{where}: unknown compression {compression}")
    if len(data) != raw_len or chunk_id(data) != cid:
        raise ChunkCorrupt(cid, where)
    return data
