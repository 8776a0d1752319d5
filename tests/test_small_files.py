"""The batched small-file path: same manifests as the streaming Ingester, torn-read
rule, and a many-file commit that round-trips through the real CLI."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import clear_worktree, run_vsync, snapshot_tree

from vsync.model.batchread import SMALL_MAX, BatchReader, FileRead
from vsync.model.folder_scan import WorkFile
from vsync.model.ingest import Ingester
from vsync.store.chunker import ChunkerParams


def _content(rng: random.Random, size: int, text: bool) -> bytes:
    if not text:
        return rng.randbytes(size)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"\n", b"    ", b"return", b"x = 1"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def test_manifest_is_the_same_whichever_path_read_the_file(tmp_path: Path) -> None:
    params = ChunkerParams()
    lo, avg, hi = params.min_size, params.avg_size, params.max_size
    sizes = [0, 1, lo - 1, lo, lo + 1, avg - 1, avg, avg + 1, lo + avg, hi - 1, hi, hi + 1]
    sizes += [2 * hi - 1, 2 * hi, 2 * hi + 1, 3 * hi + 12345, SMALL_MAX - 1, SMALL_MAX]
    rng = random.Random(6)
    files: list[WorkFile] = []
    for i, size in enumerate(sizes):
        for text in (False, True):
            path = tmp_path / f"f{i}-{int(text)}"
            path.write_bytes(_content(rng, size, text))
            files.append(WorkFile(path.name, str(path), os.lstat(path)))
    got: dict[str, FileRead] = {}
    with ThreadPoolExecutor(2) as pool:
        BatchReader(params, 3, pool, 2).read(files, None, lambda fr: got.setdefault(fr.wf.path, fr))
    assert sorted(got) == sorted(wf.path for wf in files)
    multi = 0
    with Ingester(params, 3) as ingester:
        for wf in files:
            with open(wf.disk, "rb") as f:
                expected = ingester.ingest(f, None).to_bytes()
            assert got[wf.path].manifest == expected, (wf.path, wf.st.st_size)
            multi += len(expected) > 20 + 36
    assert multi > 10  # the sizes above min_size really were cut into several chunks


def test_many_small_files_commit_and_round_trip(work: Path, vsync) -> None:
    rng = random.Random(7)
    for i in range(600):
        folder = work / f"d{i % 7}" / f"s{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 100, 5000, 16383, 16384, 16385, 70000, 300000])
        (folder / f"f{i}.txt").write_bytes(_content(rng, size, i % 2 == 0))
    (work / "d0" / "dup-a").write_bytes(b"same\n")  # identical content: one manifest
    (work / "d1" / "dup-b").write_bytes(b"same\n")
    (work / "d2" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "d2" / "run.sh").chmod(0o755)
    os.symlink("../d0/dup-a", work / "d1" / "link")
    before = snapshot_tree(work)
    vsync("commit", "-m", "many")
    assert vsync("status", "--porcelain").stdout == ""
    changed = ["d0/s0/f0.txt", "d3/s3/f3.txt", "d2/run.sh"]
    for rel in changed:
        with open(work / rel, "ab") as f:
            f.write(b"edit\n")
    (work / "d2" / "run.sh").chmod(0o755)
    out = vsync("status", "--porcelain").stdout.splitlines()
    assert out == [f" M {p}" for p in sorted(changed)]
    vsync("commit", "-m", "edit")
    assert vsync("status", "--porcelain").stdout == ""
    after = snapshot_tree(work)
    clear_worktree(work)
    vsync("checkout", "HEAD~1")
    assert snapshot_tree(work) == before
    vsync("checkout", "HEAD")
    assert snapshot_tree(work) == after
    assert run_vsync("fsck", cwd=work).returncode == 0


def test_file_whose_bytes_never_match_its_stat_is_not_read(tmp_path: Path) -> None:
    """The torn-read rule: bytes read must match the size stat reports, and a
    file that vanishes is reported, never given a manifest."""
    kept = tmp_path / "kept.txt"
    kept.write_bytes(b"kept\n")
    gone = tmp_path / "gone.txt"
    gone.write_bytes(b"gone\n")
    proc = "/proc/self/status"  # stat says 0 bytes, a read returns more: never consistent
    files = [
        WorkFile("kept.txt", str(kept), os.lstat(kept)),
        WorkFile("gone.txt", str(gone), os.lstat(gone)),
        WorkFile("proc", proc, os.lstat(proc)),
    ]
    gone.unlink()
    got: dict[str, FileRead] = {}
    with ThreadPoolExecutor(2) as pool:
        BatchReader(ChunkerParams(), 3, pool, 2).read(
            files, None, lambda fr: got.setdefault(fr.wf.path, fr)
        )
    assert got["kept.txt"].manifest is not None and got["kept.txt"].size == 5
    assert got["gone.txt"].manifest is None
    assert got["proc"].manifest is None
