"""Commit after a 10-byte insertion in each large file (issue 6, scenario c).

One folder holds both large inputs (1 GiB incompressible and 1 GiB log text;
32 MiB each with ``--quick``) as hard links. Each tool first stores it, not
timed (vsync: ``vsync init && vsync commit``; restic: ``restic init
--repository-version 2 && restic backup --compression auto``; the init is a
copy of a template, as in bench/commit_throughput.py). Then both
files are replaced by copies with 10 bytes inserted in the middle
(:func:`datagen.insert_middle`, new inodes), the new files are read once into
the page cache, and the timed step runs: ``vsync commit`` against a second
``restic backup`` (which finds its parent snapshot, and re-reads both files
because their inode and mtime changed, as vsync does). "new bytes" is what
the repository grew by (``du -sb`` after minus before). Fresh repositories
for each of the runs, tools interleaved.

Run through ``bench/run.py`` (``--only edit``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import datagen
import machine
from commit_throughput import Input, inputs, restic_backup, restic_repo
from measure import (
    VSYNC,
    Series,
    Target,
    du_bytes,
    fresh,
    row,
    run,
    run_all,
    tool_env,
    tool_versions,
    verdict,
)
from report import human, vsync_version, warm

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## Commit after a 10-byte insertion (issue 6)"
RUNS = 3
TOOLS = ("vsync", "restic")
EDIT_SEED = 10


def place(files: list[tuple[Path, str]], work: Path) -> None:
    for src, name in files:
        (work / name).unlink(missing_ok=True)
        os.link(src, work / name)
    warm(*(work / name for _, name in files))


def once(
    tool: str, old: list[tuple[Path, str]], new: list[tuple[Path, str]], scratch: Path
) -> tuple[Series, int, int]:
    """One round: untimed first store, then the timed store after the edit."""
    env = tool_env()
    work = fresh(scratch / f"{tool}-work")
    s = Series(tool)
    try:
        place(old, work)
        if tool == "vsync":
            run_all([[*VSYNC, "init"], [*VSYNC, "commit", "-q", "-m", "first"]], work, env)
            repo = work / ".vsync"
            before = du_bytes(repo)
            place(new, work)
            r = run([*VSYNC, "commit", "-q", "-m", "insert"], work, env)
        else:
            repo = scratch / "restic-repo"
            base = restic_repo(repo, scratch / "restic-cache", env)
            restic_backup(base, work, env)
            before = du_bytes(repo)
            place(new, work)
            r = restic_backup(base, work, env)
        after = du_bytes(repo)
        if after <= before:
            raise SystemExit(f"{tool} stored nothing new after the 10-byte insertions")
        s.runs.append(r)
        s.stored.append(after - before)
        return s, before, after
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch / "restic-repo", ignore_errors=True)


def measure(ins: list[Input], scratch: Path) -> dict[str, Series]:
    old = [(i.path, i.name) for i in ins]
    new = [(datagen.insert_middle(i.path, EDIT_SEED), i.name) for i in ins]
    series = {tool: Series(tool) for tool in TOOLS}
    for i in range(RUNS):
        for tool in TOOLS:
            print(f"  run {i + 1}/{RUNS}: {tool} after the insertions", flush=True)
            s, _, _ = once(tool, old, new, scratch)
            series[tool].runs += s.runs
            series[tool].stored += s.stored
    return series


def targets(s: dict[str, Series]) -> list[Target]:
    v, r = s["vsync"], s["restic"]
    scen = "c. commit after a 10-byte insertion in each large file"
    t = v.seconds / r.seconds
    b = v.bytes_stored / max(1, r.bytes_stored)
    return [
        Target(scen, "vsync time / restic time", f"{t:.2f}", "<= 1", verdict(t, 1.0, False)),
        Target(scen, "vsync new bytes / restic new bytes", f"{b:.2f}", "<= 1",
               verdict(b, 1.0, False)),
    ]  # fmt: skip


def section(
    ins: list[Input], s: dict[str, Series], tg: list[Target], quick: bool, load: str
) -> str:
    total = sum(i.size for i in ins)
    rows = [
        row("tool", "timed", f"time, median of {RUNS} (min-max)", "CPU (user+sys)",
            "new bytes stored", "peak RSS"),
        "|---|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    cmd = {"vsync": "`vsync commit`", "restic": "second `restic backup`"}
    for tool in TOOLS:
        x = s[tool]
        rows.append(
            row(tool, cmd[tool], x.time_cell(), f"{x.cpu:.2f} s", human(x.bytes_stored),
                human(x.peak_rss))
        )  # fmt: skip
    rows += ["", row("measure", "value", "target", "result"), "|---|---:|---|---|"]
    rows += [row(t.measure, t.value, t.target, t.verdict) for t in tg]
    names = " and ".join(f"{human(i.size)} {i.label}" for i in ins)
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only edit` (`bench/edit_commit.py`).

One folder holds two files ({names}, {human(total)} in all). Each tool first stores it
(not timed): `vsync init && vsync commit`, or `restic init --repository-version 2 &&
restic backup --compression auto`. Then both files are replaced by copies with 10 bytes
inserted in the middle (new inodes, read once into the page cache) and the timed step
runs: `vsync commit` against a second `restic backup` of the folder (it uses the first
snapshot as parent but re-reads both files, whose inode and mtime changed). "New bytes
stored" is how much the repository grew (`du -sb` after minus before), median of
{RUNS} rounds, each in fresh repositories, tools interleaved.

{chr(10).join(rows)}
"""


def main(quick: bool) -> tuple[str, list[Target]]:
    load = machine.load()
    ins = inputs(quick)
    for inp in ins:
        inp.ensure()
    scratch = fresh(DATA_DIR / "runs-edit")
    try:
        print("scenario c: commit after a 10-byte insertion", flush=True)
        s = measure(ins, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tg = targets(s)
    return section(ins, s, tg, quick, f"{load}, {machine.load_now()} at the end"), tg
