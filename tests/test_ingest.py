"""The ingest pipeline on real files: block cutting, the reading thread, compression sampling."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from vsync.model.ingest import Ingester, read_ahead
from vsync.store import codec
from vsync.store.chunker import BLOCK_SIZE, Chunker, ChunkerParams
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import StateDB


def text(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"status=200", b"GET", b"/api/v1/items"]
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
    return bytes(out[:n])


def test_sampling_keeps_incompressible_raw_and_compresses_text() -> None:
    noise = os.urandom(128 * 1024)
    assert codec.encode(noise, 3, sample_first=True) == (codec.COMPRESSION_NONE, noise)
    comp, payload = codec.encode(text(128 * 1024), 3, sample_first=True)
    assert comp == codec.COMPRESSION_ZSTD and len(payload) < 64 * 1024


def test_sampling_judges_by_the_middle_only() -> None:
    """The documented cost: compressible ends around a noisy middle stay raw when sampled."""
    size = 128 * 1024
    mixed = text(size // 2 - 8192) + os.urandom(16384) + text(size // 2 - 8192, seed=2)
    assert codec.encode(mixed, 3)[0] == codec.COMPRESSION_ZSTD
    assert codec.encode(mixed, 3, sample_first=True)[0] == codec.COMPRESSION_NONE


def test_large_file_through_the_reading_thread_matches_one_pass(tmp_path: Path) -> None:
    data = os.urandom(3 * BLOCK_SIZE + 12345) + text(2 * BLOCK_SIZE)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    params = ChunkerParams()
    (tmp_path / "chunks").mkdir()
    store = ChunkStore(tmp_path / "chunks", StateDB(tmp_path / "state.db"))
    with Ingester(params, 3) as ingester, store.writer() as w, open(path, "rb") as f:
        threaded = ingester.ingest(f, w)  # a real file over two blocks: read_ahead
        in_memory = ingester.ingest(io.BytesIO(data), None)  # no fileno: read inline
    assert threaded == in_memory
    expected = [bytes(c) for c in Chunker(params).chunks(io.BytesIO(data))]
    assert [length for _cid, length in threaded.chunks] == [len(c) for c in expected]
    assert b"".join(store.read(cid) for cid, _n in threaded.chunks) == data


def test_read_ahead_raises_what_the_reader_raised_and_stops() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError(5, "Input/output error")

    got = []
    with pytest.raises(OSError, match="Input/output error"):
        for item in read_ahead(items(), 1):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_stops_its_thread_when_the_consumer_leaves() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    for item in read_ahead(items(), 2):
        if item == 3:
            break
    # the reading thread was joined: nothing more is produced once the loop is left
    count = len(produced)
    assert count < 1000
    assert len(produced) == count
