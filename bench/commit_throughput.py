"""Commit throughput (issue 6, scenarios a and b): vsync against git and restic.

For each input (1 GiB incompressible, 1 GiB log text; 32 MiB each with
``--quick``) and each tool, a fresh folder holds a hard link to the file, the
file is read once so every tool starts with it in the page cache, an empty
repository is made (not timed, for any tool) and the timed sequence runs:

- vsync: ``vsync commit -q -m bench`` (after ``vsync init``)
- git: ``git add FILE && git commit -q -m bench`` (after ``git init -q``)
- restic: ``restic backup --compression auto -q FOLDER`` into a fresh
  repository: a copy of one made by ``restic init --repository-version 2``
  (not timed: it is mostly the password's key derivation, a one-off per
  repository), with an empty cache directory.

Runs are interleaved (vsync, git, restic, vsync, ...) so drifting load on
the machine touches each tool alike. "stored" is ``du -sb`` of ``.vsync``,
``.git`` or the restic repository. :func:`sizes` measures the same three
tools on incompressible files of 1, 16 and 256 MiB for the throughput plot.

Run through ``bench/run.py`` (``--only commit``; ``make bench`` / ``make bench-quick``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import datagen
import machine
from measure import (
    GIB,
    MIB,
    VSYNC,
    Run,
    Series,
    Target,
    du_bytes,
    fresh,
    mib_s,
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
HEADING = "## Commit throughput (issue 2)"
DOCS_DIR = BENCH_DIR.parent / "docs"
PLOT_NAME = "benchmarks-commit-throughput.png"  # bench/plot.py writes it
RUNS = 3
TOOLS = ("vsync", "git", "restic")
PLOT_SIZES = (1 * MIB, 16 * MIB, 256 * MIB)


@dataclass(frozen=True)
class Input:
    label: str
    kind: str  # "random" or "text"
    seed: int
    size: int

    @property
    def path(self) -> Path:
        return DATA_DIR / f"{self.kind}-{self.seed}-{self.size}.dat"

    @property
    def name(self) -> str:
        return "data.log" if self.kind == "text" else "data.bin"

    def ensure(self) -> Path:
        return datagen.ensure(self.path, self.kind, self.seed, self.size)


def inputs(quick: bool) -> list[Input]:
    size = 32 * MIB if quick else GIB
    return [Input("incompressible", "random", 1, size), Input("log text", "text", 2, size)]


def restic_repo(repo: Path, cache: Path, env: dict[str, str]) -> list[str]:
    """``restic -r REPO ...`` for a fresh, empty version-2 (compressing) repository.

    ``restic init`` spends over a second in key derivation, so one template
    repository is initialised per benchmark process and copied (a few KiB);
    the cache directory is emptied too, so nothing of an earlier run is known.
    """
    template = repo.parent / "restic-template"
    if not (template / "config").exists():
        fresh(template)
        shutil.rmtree(template)
        run(["restic", "-q", "-r", str(template), "init", "--repository-version", "2"],
            repo.parent, env)  # fmt: skip
    for path in (repo, cache):
        if path.exists():
            shutil.rmtree(path)
    shutil.copytree(template, repo)
    return ["restic", "-r", str(repo), "--cache-dir", str(cache), "-q"]


def restic_backup(base: list[str], folder: Path, env: dict[str, str]) -> Run:
    cmd = [*base, "backup", "--compression", "auto", "--host", "bench", str(folder)]
    return run(cmd, folder, env)


def commit_once(tool: str, path: Path, name: str, scratch: Path) -> tuple[Run, int]:
    """One timed first commit of ``path`` by ``tool``; returns the run and bytes stored."""
    env = tool_env()
    work = fresh(scratch / f"{tool}-work")
    os.link(path, work / name)
    warm(work / name)
    try:
        # Making the empty repository is not timed, for any tool: the issue times
        # the commit (`git add && git commit`, `restic backup`).
        if tool == "vsync":
            run([*VSYNC, "init"], work, env)
            r = run([*VSYNC, "commit", "-q", "-m", "bench"], work, env)
            return r, du_bytes(work / ".vsync")
        if tool == "git":
            run(["git", "init", "-q"], work, env)
            r = run_all([["git", "add", name], ["git", "commit", "-q", "-m", "b"]], work, env)
            return r, du_bytes(work / ".git")
        repo = scratch / "restic-repo"
        base = restic_repo(repo, scratch / "restic-cache", env)
        r = restic_backup(base, work, env)
        stored = du_bytes(repo)
        shutil.rmtree(repo)
        return r, stored
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(path: Path, name: str, scratch: Path, runs: int = RUNS) -> dict[str, Series]:
    series = {tool: Series(tool) for tool in TOOLS}
    for i in range(runs):
        for tool in TOOLS:
            print(f"  run {i + 1}/{runs}: {tool} commits {path.name}", flush=True)
            r, stored = commit_once(tool, path, name, scratch)
            series[tool].runs.append(r)
            series[tool].stored.append(stored)
    return series


COMMANDS = {
    "vsync": "`vsync commit` (init not timed)",
    "git": "`git add && git commit` (init not timed)",
    "restic": "`restic backup` (init not timed)",
}
# (git speed factor, restic speed factor) targets per input kind
SPEED_TARGETS = {"random": (10.0, 3.0), "text": (5.0, 3.0)}


def targets(inp: Input, s: dict[str, Series], letter: str) -> list[Target]:
    v, g, r = s["vsync"], s["git"], s["restic"]
    tgit, trestic = SPEED_TARGETS[inp.kind]
    scen = f"{letter}. commit a new {human(inp.size)} {inp.label} file"
    out = [
        Target(scen, "vsync speed / git speed", f"{g.seconds / v.seconds:.2f}x",
               f">= {tgit:.0f}x", verdict(g.seconds / v.seconds, tgit, True)),
        Target(scen, "vsync speed / restic speed", f"{r.seconds / v.seconds:.2f}x",
               f">= {trestic:.0f}x", verdict(r.seconds / v.seconds, trestic, True)),
    ]  # fmt: skip
    if inp.kind == "text":
        ratio = v.bytes_stored / r.bytes_stored
        out.append(
            Target(scen, "vsync stored / restic stored", f"{ratio:.3f}", "<= 1",
                   verdict(ratio, 1.0, False))
        )  # fmt: skip
    return out


def table(inp: Input, s: dict[str, Series], tg: list[Target]) -> str:
    rows = [
        row("tool", "timed", f"time, median of {len(s['vsync'].runs)} (min-max)", "throughput",
            "CPU (user+sys)", "stored on disk", "stored / input", "peak RSS"),
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for tool in TOOLS:
        x = s[tool]
        rows.append(
            row(tool, COMMANDS[tool], x.time_cell(), mib_s(inp.size, x.seconds),
                f"{x.cpu:.2f} s", human(x.bytes_stored), f"{x.bytes_stored / inp.size:.3f}",
                human(x.peak_rss))
        )  # fmt: skip
    v = s["vsync"]
    rows += ["", row("measure", "value", "CPU ratio (peer CPU / vsync CPU)", "target", "result"),
             "|---|---:|---:|---|---|"]  # fmt: skip
    for t in tg:
        peer = s["git"] if "git" in t.measure else s["restic"]
        cpu = f"{peer.cpu / v.cpu:.2f}x" if "speed" in t.measure else "-"
        rows.append(row(t.measure, t.value, cpu, t.target, t.verdict))
    return "\n".join(rows)


def sizes(scratch: Path, runs: int = RUNS) -> dict[int, dict[str, Series]]:
    """Commit throughput of the three tools on incompressible files of PLOT_SIZES."""
    out: dict[int, dict[str, Series]] = {}
    for size in PLOT_SIZES:
        inp = Input("incompressible", "random", 1, size)
        inp.ensure()
        print(f"plot: {human(size)} incompressible", flush=True)
        out[size] = measure(inp.path, inp.name, scratch, runs)
    return out


def section(
    results: list[tuple[Input, dict[str, Series], list[Target]]],
    quick: bool,
    load: str,
    plot: str | None,
) -> str:
    size = human(results[0][0].size)
    parts = []
    for letter, (inp, s, tg) in zip("ab", results, strict=False):
        parts.append(
            f"### {letter}. Commit a new {human(inp.size)} {inp.label} file\n\n{table(inp, s, tg)}"
        )
    when = "this run"
    if plot is None and not quick and (DOCS_DIR / PLOT_NAME).exists():
        plot, when = PLOT_NAME, "the last run of `bench/run.py --only plot` or `make bench`"
    plot_md = (
        f"\n\nCommit throughput by file size (incompressible, 1 MiB to {size}; median of "
        f"{RUNS} runs each, min-max as error bars; from {when}):\n\n"
        f"![commit throughput by file size]({plot})\n"
        if plot
        else ""
    )
    body = "\n\n".join(parts)
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only commit` for this section alone
(`bench/commit_throughput.py`).

Each tool stores one {size} file (a hard link in a fresh folder, read once before
each run so it is in the page cache): `vsync commit -q` against
`git add FILE && git commit` (default settings: zlib level -1,
`core.bigFileThreshold` 512 MiB) and `restic backup --compression auto`. Each
commits into a fresh, empty repository whose making is not timed (`vsync init`,
`git init`, and for restic a copy of one made by `restic init --repository-version 2`,
which is mostly key derivation). Time is wall-clock for the timed sequence,
median of {RUNS} runs with min-max, the tools' runs interleaved; CPU is user + system
of the same commands (less sensitive than wall-clock to other load on the machine);
"stored" is `du -sb` of `.vsync`, `.git` or the restic repository; peak RSS is the
largest maximum resident set of any command in the sequence (`/usr/bin/time -v`).
Inputs come from fixed seeds (`bench/datagen.py`): BLAKE3 output (incompressible)
and web-server log lines (what zstd saves on them is the "stored / input" column).
Speed ratios are time ratios:
"vsync speed / git speed" 5x means vsync took a fifth of git's time.

{body}{plot_md}
"""


def main(
    quick: bool, with_sizes: bool = False, only_sizes: bool = False, docs: bool = False
) -> tuple[str, list[Target], dict[int, dict[str, Series]]]:
    """Scenarios a and b (unless ``only_sizes``), and the plot's sizes if ``with_sizes``.

    The plot goes to docs/ when ``docs``, else to bench/results/. Returns the
    section's text (with ``only_sizes``: the plot's file name), the targets and
    the incompressible measurements by size.
    """
    load = machine.load()
    todo = [] if only_sizes else inputs(quick)
    for inp in todo:
        print(f"generating {inp.label} ({human(inp.size)}) ...", flush=True)
        inp.ensure()
    scratch = fresh(DATA_DIR / "runs-commit")
    results: list[tuple[Input, dict[str, Series], list[Target]]] = []
    by_size: dict[int, dict[str, Series]] = {}
    try:
        for letter, inp in zip("ab", todo, strict=True):
            print(f"scenario {letter}: commit {human(inp.size)} {inp.label}", flush=True)
            s = measure(inp.path, inp.name, scratch)
            results.append((inp, s, targets(inp, s, letter)))
            if inp.kind == "random":
                by_size[inp.size] = s
        if with_sizes:
            if only_sizes:
                big = inputs(quick)[0]
                big.ensure()
                print(f"plot: {human(big.size)} incompressible", flush=True)
                by_size[big.size] = measure(big.path, big.name, scratch)
            by_size.update(sizes(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    plot = None
    if with_sizes:
        import plot as plot_mod

        plot = plot_mod.commit_throughput(by_size, to_docs=docs)
    if only_sizes:
        return str(plot), [], by_size
    text = section(results, quick, load + f", {machine.load_now()} at the end", plot)
    return text, [t for _, _, tg in results for t in tg], by_size
