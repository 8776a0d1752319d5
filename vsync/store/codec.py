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

MAX_CHUNK_BYTES = 16 * 1024 * 1024
"""The format's absolute chunk maximum (docs/format.md): no chunk is longer, whatever
the chunking parameters; a reader refuses a larger ``raw_len`` before decoding."""

MAX_WINDOW = 2 * MAX_CHUNK_BYTES  # a zstd window larger than any chunk buys nothing


def max_stored_len(raw_len: int) -> int:
    """The longest payload a chunk of ``raw_len`` bytes may be stored as: zstd's
    worst-case bound (``ZSTD_COMPRESSBOUND``, rounded up); raw is never longer."""
    return raw_len + (raw_len >> 8) + 64


_local = threading.local()


def chunk_id(data: bytes | memoryview) -> bytes:
    """The BLAKE3-256 digest of a chunk's raw bytes: its id."""
    return blake3.blake3(data).digest()


def content_hasher() -> blake3.blake3:
    """A streaming BLAKE3-256 hasher (``update``, ``hexdigest``) for a whole file's bytes."""
    return blake3.blake3()


CHUNK_TABLES: dict[int, tuple[int, int]] = {3: (16, 15)}
"""For a level, the (hash_log, chain_log) of zstd's match tables sized for one chunk
rather than for a large input: level 3 keeps its strategy (double fast) with the
2^16-entry hash and 2^15-entry chain tables of zstd's level 2. On the benchmark's log
text zstd then takes ~5 % less CPU (a commit ~3.5 % less) and stores 0.07 % more
(docs/format.md, "Chunking parameters")."""


def compression_parameters(level: int) -> zstandard.ZstdCompressionParameters:
    """zstd's parameters for ``level`` as for a large input, with a minimum match of
    6 bytes for the fast strategies (levels up to 4) and, for the levels in
    :data:`CHUNK_TABLES`, match tables sized for a chunk.

    Told a chunk's size, zstd would pick its small-input tables, whose shorter
    minimum match stores log text ~3.5 % larger at the same speed; the large-input
    tables with min_match 6 store it smaller than restic's level at the same cost
    (measured in docs/format.md, "Chunking parameters"). Only the writer uses these:
    a reader needs no parameters, and a frame's window never exceeds the chunk."""
    base = zstandard.ZstdCompressionParameters.from_level(level, source_size=1 << 20)
    min_match = 6 if base.strategy <= zstandard.STRATEGY_DFAST else base.min_match
    hash_log, chain_log = CHUNK_TABLES.get(level, (base.hash_log, base.chain_log))
    return zstandard.ZstdCompressionParameters(
        strategy=base.strategy,
        window_log=base.window_log,
        hash_log=hash_log,
        chain_log=chain_log,
        search_log=base.search_log,
        min_match=min_match,
        target_length=base.target_length,
        write_content_size=1,
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
        d = _local.decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
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
    # python-zstandard allocates zstd's worst case (a little over len(data)) and only
    # sets the size of what it wrote, so ``packed`` holds the raw chunk's memory: a
    # queue of payloads (pack writes, the offer, the SSH channel) would hold about 5x
    # what it counts on log text. A copy of the right size costs ~1 µs a chunk
    # against ~500 µs of compressing it, and frees the rest at once.
    return COMPRESSION_ZSTD, bytes(memoryview(packed))


def decode(compression: int, payload: bytes, raw_len: int, cid: bytes, where: str) -> bytes:
    """Decompress a stored chunk and verify it against its id (:func:`check`); its raw
    bytes (``payload`` itself when it is stored raw)."""
    data = _decoded(compression, payload, raw_len, cid, where)
    return data if isinstance(data, bytes) else bytes(data)  # bytes in, bytes out


def check(
    compression: int, payload: bytes | memoryview, raw_len: int, cid: bytes, where: str
) -> None:
    """Raise ChunkCorrupt unless ``payload`` decodes to ``raw_len`` bytes whose BLAKE3 is
    ``cid`` (a view is checked where it lies: nothing is copied for a raw chunk)."""
    _decoded(compression, payload, raw_len, cid, where)


def _decoded(
    compression: int, payload: bytes | memoryview, raw_len: int, cid: bytes, where: str
) -> bytes | memoryview:
    """Decompress a stored chunk and verify it against its id.

    Nothing is allocated beyond ``raw_len`` (itself at most MAX_CHUNK_BYTES):
    python-zstandard sizes its output by the frame's declared content size and
    ignores ``max_output_size`` when there is one, so the declared size is read
    from the frame header first and must equal ``raw_len``; a frame that
    declares none is decompressed as a stream and stopped one byte past
    ``raw_len``."""
    if raw_len > MAX_CHUNK_BYTES:
        raise ChunkCorrupt(
            cid, f"{where}: {raw_len} bytes is over the {MAX_CHUNK_BYTES}-byte maximum"
        )
    data: bytes | memoryview
    if compression == COMPRESSION_NONE:
        data = payload
    elif compression == COMPRESSION_ZSTD:
        if len(payload) > max_stored_len(raw_len):
            raise ChunkCorrupt(cid, f"{where}: {len(payload)} stored bytes for {raw_len}")
        try:
            declared = zstandard.frame_content_size(payload)
            if declared == -1:
                data = _decompress_bounded(payload, raw_len)
            elif declared != raw_len:
                raise ChunkCorrupt(cid, f"{where}: zstd frame declares {declared} bytes")
            else:
                data = _decompressor().decompress(payload, max_output_size=raw_len)
        except zstandard.ZstdError as exc:
            raise ChunkCorrupt(cid, f"{where}: zstd: {exc}") from None
    else:
        raise ChunkCorrupt(cid, f"{where}: unknown compression {compression}")
    if len(data) != raw_len or chunk_id(data) != cid:
        raise ChunkCorrupt(cid, where)
    return data


def _decompress_bounded(payload: bytes | memoryview, raw_len: int) -> bytes:
    """A frame without a declared size: at most ``raw_len + 1`` bytes of its output."""
    out = bytearray()
    with _decompressor().stream_reader(payload) as reader:
        while len(out) <= raw_len:
            piece = reader.read(raw_len + 1 - len(out))
            if not piece:
                break
            out += piece
    return bytes(out)
