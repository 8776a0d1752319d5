"""Many files through one ingest pipeline (vsync.model.ingest_files), on real files."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from tests.test_ingest import text
from vsync.model.folder_scan import WorkFile
from vsync.model.ingest import Ingester
from vsync.model.ingest_files import ingest_files
from vsync.store.chunker import BLOCK_SIZE, ChunkerParams
from vsync.store.chunkstore import ChunkStore
from vsync.store.statedb import StateDB


def _files(tmp_path: Path, contents: dict[str, bytes]) -> list[WorkFile]:
    out = []
    for name, data in contents.items():
        disk = tmp_path / name
        disk.write_bytes(data)
        out.append(WorkFile(name, str(disk), os.stat(disk)))
    return out


def _store(tmp_path: Path) -> ChunkStore:
    (tmp_path / "chunks").mkdir()
    return ChunkStore(tmp_path / "chunks", StateDB(tmp_path / "state.db"))


def test_each_file_gets_the_manifest_it_gets_alone_in_order(tmp_path: Path) -> None:
    contents = {
        "empty": b"",
        "tiny": b"hello",
        "photo.jpg": os.urandom(BLOCK_SIZE + 123_457),
        "log.txt": text(3 * BLOCK_SIZE // 2, seed=3),
        "again.jpg": b"",  # filled below: the same bytes as photo.jpg, stored once
        "big.bin": os.urandom(2 * BLOCK_SIZE + 99) + text(BLOCK_SIZE, seed=4),
    }
    contents["again.jpg"] = contents["photo.jpg"]
    files = _files(tmp_path, contents)
    store = _store(tmp_path)
    params = ChunkerParams()
    with Ingester(params, 3) as ingester, store.writer() as w:
        got = []
        at_yield = []  # what each manifest holds when its file is handed out
        for g in ingest_files(iter(files), ingester, w):
            got.append(g)
            at_yield.append(None if g.manifest is None else g.manifest.to_bytes())
        alone = [ingester.ingest(io.BytesIO(data), None) for data in contents.values()]
    assert [g.wf.path for g in got] == list(contents)
    assert at_yield == [m.to_bytes() for m in alone]
    for g, data in zip(got, contents.values(), strict=True):
        assert g.manifest is not None and g.st is not None and g.hashed_at > 0
        assert g.st.st_size == len(data) and not g.unreadable
        assert b"".join(store.read(cid) for cid, _n in g.manifest.chunks) == data
    assert w.chunks_written == len({cid for m in alone for cid, _n in m.chunks})


def test_a_file_changed_while_it_is_read_is_read_again_into_a_new_manifest(
    tmp_path: Path,
) -> None:
    """The first block's hash settles while the reader is at most a few blocks in (the
    stages hold one block each, the read-ahead one): the file grows under the read."""
    big = tmp_path / "grows.bin"
    files = _files(tmp_path, {"before": b"x" * 10, "grows.bin": os.urandom(8 * BLOCK_SIZE)})
    store = _store(tmp_path)
    grown: list[int] = []

    def progress(n: int) -> None:
        if not grown and n > 10:
            with open(big, "ab") as f:
                f.write(b"appended while read")
            grown.append(n)

    with Ingester(ChunkerParams(), 3, threads=1) as ingester, store.writer() as w:
        got = list(ingest_files(iter(files), ingester, w, progress))
        final = big.read_bytes()
        expected = ingester.ingest(io.BytesIO(final), None)
    assert grown, "the file was never changed during its read"
    assert got[1].manifest == expected
    assert got[1].st is not None and got[1].st.st_size == len(final)
    assert b"".join(store.read(cid) for cid, _n in expected.chunks) == final


def test_a_vanished_file_has_no_manifest_and_the_next_is_read(tmp_path: Path) -> None:
    files = _files(tmp_path, {"gone": b"soon gone", "kept": text(BLOCK_SIZE + 5)})
    os.unlink(files[0].disk)
    with Ingester(ChunkerParams(), 3) as ingester:
        got = list(ingest_files(iter(files), ingester, None))
    assert got[0].manifest is None and not got[0].unreadable
    assert got[1].manifest is not None and got[1].manifest.size == BLOCK_SIZE + 5


def test_leaving_early_stops_the_reading_thread(tmp_path: Path) -> None:
    files = _files(tmp_path, {f"f{i}": os.urandom(BLOCK_SIZE + i) for i in range(6)})
    with Ingester(ChunkerParams(), 3) as ingester:
        results = ingest_files(iter(files), ingester, None)
        first = next(results)
        results.close()
    assert first.wf.path == "f0" and first.manifest is not None
    assert not [t for t in threading.enumerate() if t.name == "vsync-read"]
