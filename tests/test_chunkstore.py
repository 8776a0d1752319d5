"""The chunk store on real files and real SQLite: packs, index, recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vsync.errors import ChunkCorrupt, ChunkMissing
from vsync.store import chunkpack, chunkstore, codec, faults
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import StateDB


def make_store(tmp_path: Path) -> ChunkStore:
    (tmp_path / "chunks").mkdir(exist_ok=True)
    return ChunkStore(tmp_path / "chunks", StateDB(tmp_path / "state.db"))


def add(store: ChunkStore, w, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    cid = codec.chunk_id(data)
    comp, payload = codec.encode(data, 3)
    w.add(cid, len(data), comp, payload)
    return cid


def test_round_trip_and_dedup(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    blobs = [os.urandom(5000), b"text " * 2000, b""]
    with store.writer() as w:
        ids = [add(store, w, b) for b in blobs]
        assert not w.add(ids[0], 5000, 0, blobs[0])  # already pending: not written twice
    assert [store.read(i) for i in ids] == blobs
    with store.writer() as w:
        add(store, w, blobs[1])
        assert w.chunks_written == 0
    (pack,) = list(chunkpack.iter_pack_names(store.dir))
    entries = chunkpack.read_trailer(store.dir / pack)
    assert entries is not None and [e.chunk_id for e in entries] == ids
    # compressible text is stored compressed, random bytes raw
    assert entries[1].compression == codec.COMPRESSION_ZSTD
    assert entries[0].compression == codec.COMPRESSION_NONE


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with store.writer() as w:
        cid = add(store, w, os.urandom(4096))
    (pack,) = list(chunkpack.iter_pack_names(store.dir))
    path = store.dir / pack
    raw = bytearray(path.read_bytes())
    raw[chunkpack.HEADER.size + chunkpack.RECORD.size + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    store.close_files()
    with pytest.raises(ChunkCorrupt):
        store.read(cid)


def test_missing_chunk(tmp_path: Path) -> None:
    with pytest.raises(ChunkMissing):
        make_store(tmp_path).read(b"\0" * 32)


def test_lost_index_is_rebuilt_from_packs(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with store.writer() as w:
        ids = [add(store, w, os.urandom(1000 + i)) for i in range(10)]
    store.db.close()
    for name in os.listdir(tmp_path):
        if name.startswith("state.db"):
            os.unlink(tmp_path / name)
    db = StateDB(tmp_path / "state.db")
    assert db.rebuilt
    fresh = ChunkStore(tmp_path / "chunks", db)
    fresh.rebuild_index()
    assert fresh.count() == 10
    assert all(fresh.read(i) for i in ids)


def test_killed_writer_leaves_recoverable_chunks(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    w = store.writer()
    datas = [os.urandom(3000) for _ in range(5)]
    ids = [add(store, w, d) for d in datas]
    w.wait_written()
    # simulate a kill in the middle of the 6th record: a torn tail
    w._file.write(b"CHNK\0\0\0\0" + b"\0" * 10)  # type: ignore[union-attr]
    w.wait_written()
    w.abandon()
    assert store.count() == 0
    assert store.recover_temp_packs() == 5
    assert [store.read(i) for i in ids] == datas
    assert not [n for n in os.listdir(store.dir) if n.endswith(chunkpack.TEMP_SUFFIX)]


def test_torn_payload_ends_recovery(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    w = store.writer()
    good = add(store, w, os.urandom(3000))
    bad = add(store, w, os.urandom(3000))
    w.wait_written()
    path = w._path
    w.abandon()
    raw = bytearray(path.read_bytes())  # type: ignore[union-attr]
    raw[-10] ^= 1  # last record's payload, torn
    path.write_bytes(bytes(raw))  # type: ignore[union-attr]
    assert store.recover_temp_packs() == 1
    assert store.has(good) and not store.has(bad)


def test_damaged_state_db_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    db = StateDB(tmp_path / "state.db")
    assert db.rebuilt
    assert any(n.startswith("state.db.damaged-") for n in os.listdir(tmp_path))


def test_recovery_leaves_a_live_writers_pack_alone(tmp_path: Path) -> None:
    """Two processes may write chunks at once: recovery only takes abandoned packs."""
    store = make_store(tmp_path)
    other = ChunkStore(tmp_path / "chunks", StateDB(tmp_path / "state.db"))
    with store.writer() as w:
        cid = add(store, w, os.urandom(2000))
        w.wait_written()
        assert other.recover_temp_packs() == 0
        assert w._path is not None and w._path.exists()
    assert store.read(cid)
    other.reconcile()
    assert other.has(cid)


def test_after_a_failed_write_no_pack_is_sealed_with_torn_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (the disk filled up) stops the writer: nothing queued after it
    runs, so the pack whose records it lost is never sealed, indexed or trusted."""
    store = make_store(tmp_path)
    real = chunkstore._writev_all
    calls = {"n": 0}

    def failing(fd: int, buffers: list, where: str) -> None:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 2:  # the header went in; the first pack's records do not
            time.sleep(0.3)  # the caller has queued the trailer and more by now
            raise OSError(28, "No space left on device", where)
        real(fd, buffers, where)

    monkeypatch.setattr(chunkstore, "_writev_all", failing)
    datas = [os.urandom(40_000) for _ in range(12)]
    records = []
    for d in datas:
        comp, payload = codec.encode(d, 3)
        records.append((codec.chunk_id(d), len(d), comp, payload))
    with pytest.raises(OSError, match=r"No space left|earlier write"), store.writer() as w:
        w.target_size = 200_000  # two packs fill within this one call
        w.add_many(records)
    monkeypatch.setattr(chunkstore, "_writev_all", real)
    assert store.count() == 0  # no pack was sealed over the lost records
    assert not list(chunkpack.iter_pack_names(store.dir))
    assert store.recover_temp_packs() == 0  # the temp packs hold headers only


_WRITER = """
import os, sys
from pathlib import Path
from vsync.store import codec
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import StateDB
root = Path(sys.argv[1])
store = ChunkStore(root / "chunks", StateDB(root / "state.db"))
ids = []
for i in range(int(sys.argv[2])):
    data = os.urandom(64) + i.to_bytes(4, "big")
    with store.writer() as w:
        w.add(codec.chunk_id(data), len(data), 0, data)
    ids.append(codec.chunk_id(data).hex())
print(" ".join(ids))
"""

_RECOVERER = """
import sys
from pathlib import Path
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import StateDB
root = Path(sys.argv[1])
store = ChunkStore(root / "chunks", StateDB(root / "state.db"))
stop = root / "stop"
while not stop.exists():
    store.recover_temp_packs()
"""


@pytest.mark.parametrize("window", ["temp-pack-created", "temp-pack-sealing"])
def test_recovery_in_another_process_never_takes_a_live_writers_pack(
    tmp_path: Path, window: str
) -> None:
    """A writer creates, fills and seals temp packs, pausing at ``window``, while
    another process keeps recovering abandoned ones: the recoverer must never take a
    pack between its creation and its lock, or between its unlock and its rename (the
    writer would lose it, or fail with 'No such file or directory')."""
    make_store(tmp_path).db.close()
    recoverer = subprocess.Popen([sys.executable, "-c", _RECOVERER, str(tmp_path)])
    try:
        writer = subprocess.run(
            [sys.executable, "-c", _WRITER, str(tmp_path), "5"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, faults.ENV: f"{window}=sleep:0.3"},
        )
    finally:
        (tmp_path / "stop").touch()
        recoverer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr
    store = make_store(tmp_path)
    store.recover_temp_packs()
    ids = writer.stdout.split()
    assert len(ids) == 5
    for hexid in ids:
        store.read(bytes.fromhex(hexid))  # every chunk sealed and readable
    assert not [n for n in os.listdir(store.dir) if n.endswith(chunkpack.TEMP_SUFFIX)]
