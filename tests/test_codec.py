"""The codec's zstd parameters: what the writer's choice of match tables may cost, and
that its frames stay readable by any reader."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import zstandard

from vsync.store import codec
from vsync.store.chunker import Chunker, ChunkerParams

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

import datagen  # noqa: E402


def log_text_chunks(size: int) -> list[bytes]:
    """The benchmark's log text (scenario b's seed), cut as a commit cuts it."""
    data = b"".join(datagen.log_lines(2, size))
    return list(Chunker(ChunkerParams()).chunks(io.BytesIO(data)))


def large_input_tables(level: int) -> zstandard.ZstdCompressor:
    """``level`` with zstd's large-input tables and min_match 6: the codec before it
    sized level 3's tables for a chunk."""
    params = zstandard.ZstdCompressionParameters.from_level(
        level, source_size=1 << 20, min_match=6, write_content_size=1
    )
    return zstandard.ZstdCompressor(compression_params=params)


def test_default_level_uses_match_tables_sized_for_a_chunk() -> None:
    params = codec.compression_parameters(3)
    assert params.strategy == zstandard.STRATEGY_DFAST
    assert (params.hash_log, params.chain_log, params.min_match) == (16, 15, 6)


def test_chunk_tables_store_log_text_at_most_a_fifth_of_a_percent_larger() -> None:
    # Scenario b's stored size is within 0.26 % of restic's: the faster tables may
    # spend at most 0.2 % of it (docs/format.md, "Chunking parameters").
    chunks = log_text_chunks(16 << 20)
    tuned = sum(len(codec.encode(chunk, 3)[1]) for chunk in chunks)
    big = large_input_tables(3)
    before = sum(len(big.compress(chunk)) for chunk in chunks)
    assert tuned <= before * 1.002


def test_chunk_frames_decode_with_a_reader_that_knows_no_parameters() -> None:
    for chunk in log_text_chunks(2 << 20):
        compression, payload = codec.encode(chunk, 3)
        assert compression == codec.COMPRESSION_ZSTD
        frame = zstandard.get_frame_parameters(bytes(payload))
        assert frame.content_size == len(chunk)
        assert frame.window_size <= codec.MAX_WINDOW
        cid = codec.chunk_id(chunk)
        assert codec.decode(compression, bytes(payload), len(chunk), cid, "test") == chunk
        assert zstandard.ZstdDecompressor().decompress(bytes(payload)) == chunk
