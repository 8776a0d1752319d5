"""Chunking parameters: what min/avg/max chunk sizes cost and save.

For each candidate (avg 16 KiB .. 1 MiB, min = avg/4, max = avg*4, FastCDC
2020 with normalisation 1, exactly as ``vsync.store.chunker`` runs it):

a. chunking + BLAKE3 hashing throughput on 256 MiB of random data (one thread);
b. bytes of new chunks after inserting 10 bytes into that data: the mean over
   8 separate edits, at 1/16, 3/16, ... 15/16 of the file (one is the middle);
c. manifest bytes per GiB of file (20 + 36 per chunk) and per-chunk store
   overhead (pack record header, pack trailer entry);
d. stored size of 256 MiB of log text when each chunk is compressed on its
   own with zstd level 3 (what the chunk store does), and for the default
   size, levels 1, 3 and 6 with their compression throughput.

Prints Markdown tables and writes them to bench/results/chunk_params.md; a
full run also replaces the measured tables in docs/format.md ("Chunking
parameters", between the chunk-params-table markers).
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import blake3
import datagen
import machine
import report as bench_report
import zstandard

from vsync.model.manifest import ENTRY, HEAD
from vsync.store import codec
from vsync.store.chunker import Chunker, ChunkerParams
from vsync.store.chunkpack import RECORD, TRAILER_ENTRY

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
BENCH_DIR = Path(__file__).resolve().parent
AVG_SIZES = [16 * KIB, 32 * KIB, 64 * KIB, 128 * KIB, 256 * KIB, 1 * MIB]
DEFAULT = ChunkerParams()
LEVELS = [1, 3, 6]
EDITS = 8


@dataclass
class Row:
    params: ChunkerParams
    mib_s: float
    mean_chunk: float
    new_bytes: float  # mean per edit
    new_chunks: float
    manifest_per_gib: float
    text_stored: int


def kib(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n // KIB} KiB"


def chunk_id(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def cut(params: ChunkerParams, data: bytes) -> list[bytes]:
    return list(Chunker(params).chunks(io.BytesIO(data)))


def chunk_and_hash(params: ChunkerParams, data: bytes) -> tuple[list[tuple[bytes, int]], float]:
    """(id, length) per chunk and the best-of-3 seconds it took."""
    best = float("inf")
    out: list[tuple[bytes, int]] = []
    for _ in range(3):
        start = time.perf_counter()
        out = [
            (blake3.blake3(c).digest(), len(c)) for c in Chunker(params).chunks(io.BytesIO(data))
        ]
        best = min(best, time.perf_counter() - start)
    return out, best


def compressed_size(chunks: list[bytes], level: int) -> tuple[int, float]:
    """Stored bytes (payload as the chunk store keeps it) and seconds."""
    comp = zstandard.ZstdCompressor(compression_params=codec.compression_parameters(level))
    total = 0
    start = time.perf_counter()
    for c in chunks:
        packed = comp.compress(c)
        # codec.encode: keep raw unless zstd saves at least 1/32.
        total += len(packed) if len(packed) < len(c) - len(c) // 32 else len(c)
    return total, time.perf_counter() - start


Level = tuple[int, int, float, int]  # level, stored, MiB/s, whole file in one frame


def measure(size: int) -> tuple[list[Row], list[Level], int]:
    rand = b"".join(datagen.random_bytes(7, size))
    text_path = datagen.ensure(BENCH_DIR / "data" / f"text-3-{size}.dat", "text", 3, size)
    text = text_path.read_bytes()
    rows: list[Row] = []
    for avg in AVG_SIZES:
        params = ChunkerParams(min_size=avg // 4, avg_size=avg, max_size=avg * 4)
        chunks, secs = chunk_and_hash(params, rand)
        known = {cid for cid, _n in chunks}
        fresh: list[int] = []
        for i in range(EDITS):
            pos = size * (2 * i + 1) // (2 * EDITS)
            edited = rand[:pos] + b"0123456789" + rand[pos:]
            fresh.extend(len(c) for c in cut(params, edited) if chunk_id(c) not in known)
        per_gib = GIB / statistics.fmean(n for _c, n in chunks)
        stored, _t = compressed_size(cut(params, text), 3)
        rows.append(
            Row(
                params,
                size / MIB / secs,
                statistics.fmean(n for _c, n in chunks),
                sum(fresh) / EDITS,
                len(fresh) / EDITS,
                HEAD.size + ENTRY.size * per_gib,
                stored,
            )
        )
    levels = []
    default_chunks = cut(DEFAULT, text)
    for level in LEVELS:
        stored, secs = compressed_size(default_chunks, level)
        whole = len(zstandard.ZstdCompressor(level=level).compress(text))
        levels.append((level, stored, size / MIB / secs, whole))
    return rows, levels, size


def report(rows: list[Row], levels: list[Level], size: int, load: str) -> str:
    per_chunk = RECORD.size + TRAILER_ENTRY.size
    run = f"{bench_report.RUN_LINE}\n\n" if bench_report.RUN_LINE else ""
    out = [
        f"{run}Measured {machine.today()} on {machine.describe()}; {load}; "
        f"by `bench/chunk_params.py` ({kib(size)} inputs).",
        "",
        "| min / avg / max | mean chunk | chunk+hash, 1 thread | new bytes per 10-byte insert "
        "| manifest per GiB | pack overhead per GiB | log text stored (zstd 3) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p = r.params
        mark = " **(default)**" if p == DEFAULT else ""
        chunks_per_gib = GIB / r.mean_chunk
        out.append(
            f"| {kib(p.min_size)} / {kib(p.avg_size)} / {kib(p.max_size)}{mark} "
            f"| {r.mean_chunk / KIB:.0f} KiB | {r.mib_s:.0f} MiB/s "
            f"| {r.new_bytes / KIB:.0f} KiB ({r.new_chunks:.1f} chunks) "
            f"| {r.manifest_per_gib / KIB:.0f} KiB | {per_chunk * chunks_per_gib / KIB:.0f} KiB "
            f"| {r.text_stored / size * 100:.1f} % |"
        )
    out += [
        "",
        f"zstd level on the log text, default chunking ({kib(DEFAULT.min_size)} / "
        f"{kib(DEFAULT.avg_size)} / {kib(DEFAULT.max_size)}), each chunk compressed alone, "
        "one thread:",
        "",
        "| level | stored | compression throughput | whole file as one zstd frame |",
        "|---:|---:|---:|---:|",
    ]
    for level, stored, mib_s, whole in levels:
        out.append(
            f"| {level} | {stored / size * 100:.1f} % | {mib_s:.0f} MiB/s "
            f"| {whole / size * 100:.1f} % |"
        )
    return "\n".join(out) + "\n"


FORMAT_DOC = BENCH_DIR.parent / "docs" / "format.md"
BEGIN, END = "<!-- chunk-params-table -->", "<!-- /chunk-params-table -->"


def update_format_doc(text: str, doc: Path = FORMAT_DOC) -> bool:
    """Put ``text`` between the markers in docs/format.md; False if they are missing."""
    if not doc.exists():
        return False
    old = doc.read_text(encoding="utf-8")
    start, end = old.find(BEGIN), old.find(END)
    if start < 0 or end < start:
        return False
    new = old[: start + len(BEGIN)] + "\n" + text.rstrip("\n") + "\n" + old[end:]
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(doc)
    return True


def main(quick: bool = False) -> str:
    size = 32 * MIB if quick else 256 * MIB
    print(f"measuring chunking parameters on {kib(size)} inputs ...", flush=True)
    load = machine.load()
    text = report(*measure(size), load)
    out = BENCH_DIR / "results"
    out.mkdir(exist_ok=True)
    (out / f"chunk_params{'-quick' if quick else ''}.md").write_text(text, encoding="utf-8")
    if not quick:
        update_format_doc(text)
    print(text)
    return text


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv[1:])
