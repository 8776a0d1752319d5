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


def compression_parameters(level: int) -> zstandard.ZstdCompressionParameters:
    """zstd's parameters for ``level`` as for a large input, with a minimum match of
    6 bytes for the fast strategies (levels up to 4).

    Told a chunk's size, zstd would pick its small-input tables, whose shorter
    minimum match stores log text ~3.5 % larger at the same speed; the large-input
    tables with min_match 6 store it smaller than restic's level at the same cost
    (measured in docs/format.md, "Chunking parameters")."""
    base = zstandard.ZstdCompressionParameters.from_level(level, source_size=1 << 20)
    min_match = 6 if base.strategy <= zstandard.STRATEGY_DFAST else base.min_match
    return zstandard.ZstdCompressionParameters.from_level(
        level, source_size=1 << 20, min_match=min_match, write_content_size=1
    )


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        params = compression_parameters(level)
        comp = cache[level] = zstandard.ZstdCompressor(compression_params=params)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


SAMPLE = 16 * 1024


def encode(
    data: bytes | memoryview, level: int, sample_first: bool = False
) -> tuple[int, bytes | memoryview]:
    """Compress a chunk; keep it raw (``data`` itself) when zstd saves less than
    1/32 of it.

    ``sample_first`` (the chunks before it in the same block were stored raw):
    compress only the middle 16 KiB first, and keep the chunk raw without
    compressing the rest when that saves less than 1/32. On incompressible
    data (video, archives) this skips most of zstd's work; a compressible
    chunk whose middle sample does not compress is stored raw, which costs
    space, never correctness (readers take either form)."""
    comp = _compressor(level)
    if sample_first and len(data) > 2 * SAMPLE:
        mid = (len(data) - SAMPLE) // 2
        sample = memoryview(data)[mid : mid + SAMPLE]
        if len(comp.compress(sample)) >= SAMPLE - SAMPLE // 32:
            return COMPRESSION_NONE, data
    packed = comp.compress(data)
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
