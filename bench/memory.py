"""Peak memory committing a 4 GiB file (issue 6, scenario f).

A 4 GiB incompressible file (256 MiB with ``--quick``) is generated from a
seed into bench/data/ and committed once into a fresh repository: ``vsync init
&& vsync commit``, under ``/usr/bin/time -v``. The generated file is deleted
afterwards when less than :data:`KEEP_FREE` would be left free on its disk.

Run through ``bench/run.py`` (``--only memory``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import datagen
import machine
from measure import (
    GIB,
    MIB,
    VSYNC,
    Target,
    du_bytes,
    free_bytes,
    fresh,
    mib_s,
    row,
    run,
    tool_env,
    verdict,
)
from report import human, vsync_version, warm

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## Peak memory committing a 4 GiB file (issue 6)"
SEED = 4
TARGET_RSS = 150 * MIB
KEEP_FREE = 20 * GIB


def main(quick: bool) -> tuple[str, list[Target]]:
    load = machine.load()
    size = 256 * MIB if quick else 4 * GIB
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if free_bytes(DATA_DIR) < 2 * size + 2 * GIB:
        raise SystemExit(f"memory benchmark: not enough free disk for 2 x {human(size)}")
    path = DATA_DIR / f"random-{SEED}-{size}.dat"
    print(f"scenario f: generating {human(size)} incompressible ...", flush=True)
    datagen.ensure(path, "random", SEED, size)
    scratch = fresh(DATA_DIR / "runs-memory")
    env = tool_env()
    try:
        os.link(path, scratch / "big.bin")
        warm(scratch / "big.bin")
        print(f"scenario f: vsync commits {human(size)}", flush=True)
        init = run([*VSYNC, "init"], scratch, env)
        commit = run([*VSYNC, "commit", "-q", "-m", "big"], scratch, env)
        stored = du_bytes(scratch / ".vsync")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if free_bytes(DATA_DIR) < KEEP_FREE:
            path.unlink(missing_ok=True)
    peak = max(init.peak_rss, commit.peak_rss)
    tg = [
        Target(f"f. peak memory committing a {human(size)} file", "vsync peak RSS",
               human(peak), "< 150.0 MiB", verdict(peak, TARGET_RSS, False)),
    ]  # fmt: skip
    rows = [
        row("command", "time", "throughput", "CPU (user+sys)", "stored", "peak RSS", "target",
            "result"),
        "|---|---:|---:|---:|---:|---:|---|---|",
        row("`vsync commit`", f"{commit.seconds:.2f} s", mib_s(size, commit.seconds),
            f"{commit.cpu:.2f} s", human(stored), human(commit.peak_rss), "< 150 MiB",
            verdict(commit.peak_rss, TARGET_RSS, False)),
    ]  # fmt: skip
    text = f"""{HEADING}

Measured {machine.today()} on {machine.describe()}; vsync {vsync_version()};
{load}, {machine.load_now()} at the end.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only memory` (`bench/memory.py`).

One run: a {human(size)} incompressible file (BLAKE3 output, seed {SEED}; read once into
the page cache) committed into a fresh repository by `vsync init` (peak RSS
{human(init.peak_rss)}) then `vsync commit -q`; peak RSS is the maximum resident set
`/usr/bin/time -v` reports for the command. Files this size show whether memory stays
flat with the file's size: the chunk pipeline must not hold the file, its manifest
must not grow in memory without bound. By design the pipeline holds at most one 4 MiB
block per worker thread in each stage (read ahead, hashing, compressing) plus the
blocks whose chunks wait for the pack writer, and a compressed chunk holds only its
own bytes; `tests/test_transfer_memory.py` checks that bound for `vsync sync`.

{chr(10).join(rows)}
"""
    return text, tg
