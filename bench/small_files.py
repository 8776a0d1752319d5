"""50,000 small files (issue 6, scenarios d and e): commit, commit after 1% modified, status.

The source-tree-like folder comes from :func:`datagen.source_tree` (50,000
files, about 300 MB; 2,000 with ``--quick``), cached under bench/data/. Each
round, for each tool, a fresh folder gets hard links to the tree's files, every
file is read once (page cache warm), then:

- d, first commit: ``vsync init && vsync commit`` against
  ``git init && git add -A && git commit`` (timed);
- d, after 1% modified (:func:`datagen.modify_percent`: one line replaced and
  one appended in 1% of the files, rewritten through a rename so the cached
  tree is untouched): ``vsync commit`` against ``git add -A && git commit``;
- e, no-op status: ``vsync status`` against ``git status`` on the committed
  folder, once untimed (stat caches and index refreshed), then timed
  :data:`STATUS_RUNS` times.

Run through ``bench/run.py`` (``--only small``).
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import datagen
import machine
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
HEADING_D = "## Commit 50,000 small files (issue 6)"
HEADING_E = "## No-op status on 50,000 files (issue 6)"
RUNS = 3
STATUS_RUNS = 3
TOOLS = ("vsync", "git")
TREE_SEED = 5
EDIT_SEED = 11
QUICK_FILES = 2_000  # bench-quick must stay under 2 minutes with every scenario


def tree_path(files: int) -> Path:
    return DATA_DIR / f"tree-{TREE_SEED}-{files}"


class Result:
    def __init__(self) -> None:
        self.first = {t: Series(t) for t in TOOLS}
        self.second = {t: Series(t) for t in TOOLS}
        self.status = {t: Series(t) for t in TOOLS}
        self.files = 0
        self.tree_bytes = 0
        self.median_size = 0.0
        self.mean_size = 0.0
        self.max_size = 0


def commands(tool: str) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(first commit, commit after the edit, status) for ``tool``."""
    if tool == "vsync":
        commit = [*VSYNC, "commit", "-q", "-m", "bench"]
        return [[*VSYNC, "init"], commit], [commit], [*VSYNC, "status"]
    commit = ["git", "commit", "-q", "-m", "bench"]
    add = ["git", "add", "-A"]
    return [["git", "init", "-q"], add, commit], [add, commit], ["git", "status"]


def once(tool: str, tree: Path, scratch: Path, res: Result, status_runs: int) -> None:
    env = tool_env()
    work = fresh(scratch / f"{tool}-work")
    meta = ".vsync" if tool == "vsync" else ".git"
    first, second, status = commands(tool)
    try:
        res.files = datagen.link_tree(tree, work)
        warm(*datagen.tree_files(work))
        res.first[tool].runs.append(run_all(first, work, env))
        before = du_bytes(work / meta)
        res.first[tool].stored.append(before)
        datagen.modify_percent(work, EDIT_SEED, 1)
        res.second[tool].runs.append(run_all(second, work, env))
        grew = du_bytes(work / meta) - before
        if grew <= 0:
            raise SystemExit(f"{tool} stored nothing new after 1% of the files changed")
        res.second[tool].stored.append(grew)
        run(status, work, env)  # warm: stat caches, git's index refresh
        for _ in range(status_runs):
            res.status[tool].runs.append(run(status, work, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(files: int, scratch: Path, status_runs: int = STATUS_RUNS) -> Result:
    tree = tree_path(files)
    if not tree.is_dir():
        print(f"generating a source tree of {files:,} files ...", flush=True)
    datagen.source_tree(TREE_SEED, tree, files)
    res = Result()
    res.tree_bytes = du_bytes(tree)
    sizes = [p.stat().st_size for p in datagen.tree_files(tree)]
    res.median_size = statistics.median(sizes)
    res.mean_size = statistics.fmean(sizes)
    res.max_size = max(sizes)
    for i in range(RUNS):
        for tool in TOOLS:
            print(f"  run {i + 1}/{RUNS}: {tool} on {files:,} files", flush=True)
            once(tool, tree, scratch, res, status_runs)
    return res


def _ratio(a: Series, b: Series) -> float:
    return a.seconds / b.seconds


def targets(res: Result) -> tuple[list[Target], list[Target]]:
    n = f"{res.files:,}"
    first = _ratio(res.first["vsync"], res.first["git"])
    second = _ratio(res.second["vsync"], res.second["git"])
    status = _ratio(res.status["vsync"], res.status["git"])
    d = f"d. commit {n} small files"
    e = f"e. no-op status on {n} files"
    return (
        [
            Target(d, "first commit: vsync time / git time", f"{first:.2f}", "<= 1",
                   verdict(first, 1.0, False)),
            Target(d, "after 1% modified: vsync time / git time", f"{second:.2f}", "<= 1",
                   verdict(second, 1.0, False)),
        ],
        [Target(e, "vsync status time / git status time", f"{status:.2f}", "<= 2",
                verdict(status, 2.0, False))],
    )  # fmt: skip


def _cpu_ratio(s: dict[str, Series]) -> str:
    return f"{s['vsync'].cpu / s['git'].cpu:.2f}"


def section_d(res: Result, tg: list[Target], quick: bool, load: str) -> str:
    rows = [
        row("step", "tool", "timed", f"time, median of {RUNS} (min-max)", "CPU (user+sys)",
            "stored (first) / new bytes (after)", "peak RSS"),
        "|---|---|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    steps = (
        ("first commit", res.first, {"vsync": "`vsync init && vsync commit`",
                                     "git": "`git init && git add -A && git commit`"}),
        ("after 1% modified", res.second, {"vsync": "`vsync commit`",
                                           "git": "`git add -A && git commit`"}),
    )  # fmt: skip
    for step, s, cmd in steps:
        for tool in TOOLS:
            x = s[tool]
            rows.append(
                row(step, tool, cmd[tool], x.time_cell(), f"{x.cpu:.2f} s",
                    human(x.bytes_stored), human(x.peak_rss))
            )  # fmt: skip
    rows += ["", row("measure", "value", "CPU ratio (vsync / git)", "target", "result"),
             "|---|---:|---:|---|---|"]  # fmt: skip
    for t, s in zip(tg, (res.first, res.second), strict=True):
        rows.append(row(t.measure, t.value, _cpu_ratio(s), t.target, t.verdict))
    modified = max(1, round(res.files / 100))
    return f"""{HEADING_D}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only small` (`bench/small_files.py`).

A source-tree-like folder from `bench/datagen.py` (`source_tree`, seed {TREE_SEED}):
{res.files:,} text files of code-like lines in about 500 directories nested 2-3 deep,
{human(res.tree_bytes)} on disk, sizes lognormal (median {human(res.median_size)}, mean
{human(res.mean_size)}, largest {human(res.max_size)}). Each round links it into a fresh folder
and reads every file once, then times the first commit; then {modified:,} files (1%,
`modify_percent`, seed {EDIT_SEED}) get a line replaced and a line appended and the
second commit is timed. Median of {RUNS} rounds (min-max), tools interleaved; "stored"
is `du -sb` of `.vsync` or `.git` after the first commit, "new bytes" what it grew by in
the second. git keeps loose objects (no `gc` ran).

{chr(10).join(rows)}
"""


def section_e(res: Result, tg: list[Target], quick: bool) -> str:
    n = len(res.status["vsync"].runs)
    per_round = n // RUNS
    rows = [
        row("tool", "command", f"time, median of {n} (min-max)", "CPU (user+sys)", "peak RSS"),
        "|---|---|---:|---:|---:|",
    ]
    for tool in TOOLS:
        x = res.status[tool]
        rows.append(
            row(tool, f"`{tool} status`", x.time_cell(), f"{x.cpu:.2f} s", human(x.peak_rss))
        )
    t = tg[0]
    rows += ["", row("measure", "value", "CPU ratio (vsync / git)", "target", "result"),
             "|---|---:|---:|---|---|",
             row(t.measure, t.value, _cpu_ratio(res.status), t.target, t.verdict)]  # fmt: skip
    v = statistics.median(r.seconds for r in res.status["vsync"].runs)
    per_file = v / max(1, res.files) * 1e6
    return f"""{HEADING_E}

Same machine and run as the section above (`--only small` runs both). On the folder of
{res.files:,} files just committed in each round (nothing changed since), `vsync status`
and `git status` each run once untimed (vsync's stat cache and git's index are then
fresh and the files' metadata is in the kernel's cache), then {per_round} timed run(s);
the table has the {n} timed runs of the {RUNS} rounds. vsync's median is {per_file:.1f} µs
per file.

{chr(10).join(rows)}
"""


def main(quick: bool) -> tuple[list[tuple[str, str]], list[Target]]:
    load = machine.load()
    files = QUICK_FILES if quick else 50_000
    scratch = fresh(DATA_DIR / "runs-small")
    try:
        print(f"scenarios d and e: {files:,} small files", flush=True)
        res = measure(files, scratch, 1 if quick else STATUS_RUNS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    td, te = targets(res)
    load = f"{load}, {machine.load_now()} at the end"
    return [(HEADING_D, section_d(res, td, quick, load)), (HEADING_E, section_e(res, te, quick))], [
        *td,
        *te,
    ]
