"""Status, commit and memory as the file count grows (issue 13, scenario h).

Folders of tiny files (:func:`tiny_tree`: 8-40 bytes each, 100 to a folder,
folders nested two deep) generated on the fly into bench/data/ and reused:
50,000 and 1,000,000 files (2,000 and 20,000 with ``--quick``). For each size,
each tool gets a fresh folder of hard links to the tree's files, then:

- first commit: ``vsync init && vsync commit`` against ``git init && git add -A
  && git commit`` (time, peak RSS: the memory targets);
- no-op status: once untimed (stat cache / index fresh), then
  :data:`STATUS_RUNS` timed runs of ``vsync status`` against ``git status``;
- after 1% modified (:func:`modify`: new content through a rename, so a new
  inode): ``vsync commit`` against ``git add -A && git commit`` (time, peak RSS);
- with a watcher (:func:`watched`): ``vsync watch --monitor-only`` running, no-op
  ``vsync status`` against ``git status`` with git's best setting for many files
  (``feature.manyFiles``, ``core.untrackedCache``), then 1% modified again and
  ``vsync commit`` (the fsmonitor answers what changed).

Tools interleaved, one round per size. Run through ``bench/run.py``
(``--only scale``).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

import datagen
import machine
from measure import (
    MIB,
    VSYNC,
    Run,
    Target,
    fresh,
    row,
    run,
    run_all,
    tool_env,
    tool_versions,
    verdict,
)
from report import human, vsync_version

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## Status, commit and memory at scale (issue 13)"
SIZES = (50_000, 1_000_000)
QUICK_SIZES = (2_000, 20_000)
STATUS_RUNS = 3
TOOLS = ("vsync", "git")
SEED = 13
PER_FOLDER = 100
RACY_WAIT = 2.1  # seconds: vsync.model.statcache.RACY_NS and a margin
# issue 13's targets: (status ratio, commit-after-1% ratio) at the first size; peak RSS by size
STATUS_TARGET = 2.0
COMMIT_TARGET = 1.0
WATCHED_STATUS_TARGET = 1.0  # no-op status with a watcher: vsync / tuned git, at the first size
WATCHED_STATUS_SECONDS = 0.3  # ... and in seconds at 1,000,000 files
GIT_TUNED = (("feature.manyFiles", "true"), ("core.untrackedCache", "true"))
MEMORY_TARGETS = {50_000: 150 * MIB, 1_000_000: 400 * MIB}


def tiny_tree(root: Path, files: int) -> Path:
    """``files`` tiny distinct files under ``root``; an existing ``root`` is complete."""
    if root.is_dir():
        return root
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    rng = random.Random(SEED)
    folders = (files + PER_FOLDER - 1) // PER_FOLDER
    top = max(1, int(folders**0.5))
    for f in range(folders):
        folder = tmp / f"d{f % top:04d}" / f"e{f:06d}"
        folder.mkdir(parents=True)
        for i in range(f * PER_FOLDER, min(files, (f + 1) * PER_FOLDER)):
            body = f"{i} {rng.getrandbits(64):x}\n" * rng.randrange(1, 3)
            with open(folder / f"f{i}.txt", "w") as out:
                out.write(body)
    os.replace(tmp, root)
    return root


def modify(root: Path, pct: float = 1) -> int:
    """Give ``pct`` percent of the files new content (through a rename: new inode)."""
    rng = random.Random(SEED + 1)
    files = datagen.tree_files(root)
    chosen = rng.sample(files, max(1, round(len(files) * pct / 100)))
    for path in chosen:
        tmp = path.with_name(path.name + ".edit-tmp")
        tmp.write_bytes(path.read_bytes() + f"edited {rng.getrandbits(32):x}\n".encode())
        os.replace(tmp, path)
    return len(chosen)


class Measured:
    def __init__(self) -> None:
        self.first: dict[str, Run] = {}
        self.status: dict[str, list[Run]] = {t: [] for t in TOOLS}
        self.second: dict[str, Run] = {}
        self.modified = 0
        self.watched_status: dict[str, list[Run]] = {t: [] for t in TOOLS}
        self.watched_commit: Run | None = None

    def status_s(self, tool: str) -> float:
        return statistics.median(r.seconds for r in self.status[tool])


def commands(tool: str) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """(first commit, commit after the edit, status) for ``tool``."""
    if tool == "vsync":
        commit = [*VSYNC, "commit", "-q", "-m", "bench"]
        return [[*VSYNC, "init"], commit], [commit], [*VSYNC, "status"]
    commit = ["git", "commit", "-q", "-m", "bench"]
    add = ["git", "add", "-A"]
    return [["git", "init", "-q"], add, commit], [add, commit], ["git", "status"]


def once(tool: str, tree: Path, scratch: Path, m: Measured) -> None:
    env = tool_env()
    work = fresh(scratch / f"{tool}-work")
    first, second, status = commands(tool)
    try:
        datagen.link_tree(tree, work)
        linked = time.time()
        m.first[tool] = run_all(first, work, env)
        # Linking changed every file's ctime: wait out vsync's racy window (2 s) from
        # then, as anyone running status a little after writing would (both tools).
        time.sleep(max(0.0, linked + RACY_WAIT - time.time()))
        run(status, work, env)  # warm: stat cache and index fresh
        m.status[tool] = [run(status, work, env) for _ in range(STATUS_RUNS)]
        m.modified = modify(work)
        m.second[tool] = run_all(second, work, env)
        watched(tool, work, env, m)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def watched(tool: str, work: Path, env: dict[str, str], m: Measured) -> None:
    """vsync: no-op status and the commit after 1% modified with ``vsync watch
    --monitor-only`` running; git: no-op status with its settings for many files."""
    _first, _second, status = commands(tool)
    if tool == "git":
        for key, value in GIT_TUNED:
            run(["git", "config", key, value], work, env)
        run(status, work, env)  # warm: the index rewritten (v4), the untracked cache filled
        m.watched_status[tool] = [run(status, work, env) for _ in range(STATUS_RUNS)]
        return
    log = work.parent / "monitor.out"
    with open(log, "wb") as out:
        watcher = subprocess.Popen(
            [*VSYNC, "watch", "--monitor-only"], cwd=work, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 600
        while b"state=watching" not in log.read_bytes():
            if watcher.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"vsync watch --monitor-only did not start:\n{log.read_text()}")
            time.sleep(0.05)
        run(status, work, env)  # warm: records the watcher's token
        m.watched_status[tool] = [run(status, work, env) for _ in range(STATUS_RUNS)]
        modify(work)
        m.watched_commit = run([*VSYNC, "commit", "-q", "-m", "bench"], work, env)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(60)
    if b"reason=" in log.read_bytes():
        print(f"  scenario h: the watcher said:\n{log.read_text()}", flush=True)


def measure(files: int, scratch: Path) -> Measured:
    tree = DATA_DIR / f"tiny-{SEED}-{files}"
    if not tree.is_dir():
        print(f"scenario h: generating {files:,} tiny files ...", flush=True)
    tiny_tree(tree, files)
    m = Measured()
    for tool in TOOLS:
        print(f"  scenario h: {tool} on {files:,} files", flush=True)
        once(tool, tree, scratch, m)
    return m


def targets(results: dict[int, Measured], first_size: int) -> list[Target]:
    out: list[Target] = []
    for files, m in results.items():
        n = f"{files:,}"
        st = m.status_s("vsync") / m.status_s("git")
        co = m.second["vsync"].seconds / m.second["git"].seconds
        scen = f"h. {n} tiny files"
        watched_s = statistics.median(r.seconds for r in m.watched_status["vsync"])
        watched_ratio = watched_s / statistics.median(r.seconds for r in m.watched_status["git"])
        if files == first_size:
            out.append(
                Target(scen, "no-op status, watcher running: vsync time / git time (manyFiles)",
                       f"{watched_ratio:.2f}", f"<= {WATCHED_STATUS_TARGET:g}",
                       verdict(watched_ratio, WATCHED_STATUS_TARGET, False))
            )  # fmt: skip
        if files >= 1_000_000:
            out.append(
                Target(scen, "no-op status, watcher running: vsync time", f"{watched_s:.3f} s",
                       f"< {WATCHED_STATUS_SECONDS:g} s",
                       verdict(watched_s, WATCHED_STATUS_SECONDS, False))
            )  # fmt: skip
        if m.watched_commit is not None:
            wc = m.watched_commit.seconds / m.second["git"].seconds
            out.append(
                Target(scen, "commit after 1% modified, watcher running: vsync time / git time",
                       f"{wc:.2f}", "-", "-")
            )  # fmt: skip
        if files == first_size:
            out += [
                Target(scen, "no-op status: vsync time / git time", f"{st:.2f}",
                       f"<= {STATUS_TARGET:g}", verdict(st, STATUS_TARGET, False)),
                Target(scen, "commit after 1% modified: vsync time / git time", f"{co:.2f}",
                       f"<= {COMMIT_TARGET:g}", verdict(co, COMMIT_TARGET, False)),
            ]  # fmt: skip
        else:
            out += [
                Target(scen, "no-op status: vsync time / git time", f"{st:.2f}", "-", "-"),
                Target(scen, "commit after 1% modified: vsync time / git time", f"{co:.2f}",
                       "-", "-"),
            ]  # fmt: skip
        limit = MEMORY_TARGETS.get(files)
        for step, peak in (
            ("first commit", m.first["vsync"].peak_rss),
            ("commit after 1% modified", m.second["vsync"].peak_rss),
        ):
            out.append(
                Target(scen, f"vsync peak RSS, {step}", human(peak),
                       f"< {human(limit)}" if limit else "-",
                       verdict(peak, limit, False) if limit else "-")
            )  # fmt: skip
    return out


def section(results: dict[int, Measured], tg: list[Target], quick: bool, load: str) -> str:
    rows = [
        row("files", "step", "tool", "time", "CPU (user+sys)", "peak RSS"),
        "|---:|---|---|---:|---:|---:|",
    ]
    for files, m in results.items():
        for step, pick in (
            ("first commit", lambda t, m=m: [m.first[t]]),
            (f"no-op status (median of {STATUS_RUNS})", lambda t, m=m: m.status[t]),
            ("commit after 1% modified", lambda t, m=m: [m.second[t]]),
        ):
            for tool in TOOLS:
                runs = pick(tool)
                secs = statistics.median(r.seconds for r in runs)
                cpu = statistics.median(r.cpu for r in runs)
                peak = max(r.peak_rss for r in runs)
                rows.append(
                    row(f"{files:,}", step, tool, f"{secs:.2f} s", f"{cpu:.2f} s", human(peak))
                )
        watched_rows = [
            ("vsync, watcher running", m.watched_status["vsync"]),
            ("git, manyFiles + untrackedCache", m.watched_status["git"]),
        ]
        for who, runs in watched_rows:
            if runs:
                rows.append(
                    row(f"{files:,}", f"no-op status (median of {STATUS_RUNS})", who,
                        f"{statistics.median(r.seconds for r in runs):.3f} s",
                        f"{statistics.median(r.cpu for r in runs):.3f} s",
                        human(max(r.peak_rss for r in runs)))
                )  # fmt: skip
        if m.watched_commit is not None:
            wc = m.watched_commit
            rows.append(
                row(f"{files:,}", "commit after 1% modified", "vsync, watcher running",
                    f"{wc.seconds:.2f} s", f"{wc.cpu:.2f} s", human(wc.peak_rss))
            )  # fmt: skip
    rows += ["", row("scenario", "measure", "value", "target", "result"), "|---|---|---:|---|---|"]
    rows += [row(t.scenario, t.measure, t.value, t.target, t.verdict) for t in tg]
    sizes = " and ".join(f"{f:,}" for f in results)
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only scale` (`bench/scale.py`).

Folders of {sizes} tiny files (8-40 bytes, {PER_FOLDER} to a folder, two levels of
folders; `tiny_tree`, seed {SEED}), generated once into bench/data/. For each size and
tool, in a fresh folder of hard links to them: the first commit (`vsync init && vsync
commit` against `git init && git add -A && git commit`), then (at least {RACY_WAIT} s after
the links were made, vsync's racy window, for both tools) `status` once untimed and
{STATUS_RUNS} times timed, then 1% of the files get new content through a rename and
the second commit is timed (`vsync commit` against `git add -A && git commit`). Then, with
a watcher: `vsync watch --monitor-only` is started, `status` run once untimed (it records
the watcher's token) and {STATUS_RUNS} times timed, 1% of the files get new content again and
`vsync commit` is timed (the watcher tells it what changed; against git's commit above);
git's peer is `git status` with git's settings for many files (`feature.manyFiles=true`,
which includes index version 4, and `core.untrackedCache=true`), once untimed and
{STATUS_RUNS} times timed (git's built-in fsmonitor daemon does not support Linux in the
version measured).
Peak RSS is `/usr/bin/time -v`'s maximum resident set; issue 13's memory targets
({", ".join(f"under {human(v)} at {k:,} files" for k, v in MEMORY_TARGETS.items())}) hold
for each of the two commits. One round per size; the ratios are of two
runs on the same machine at the same time, so load from other work touches both.

{chr(10).join(rows)}
"""


def main(quick: bool, only: list[int] | None = None) -> tuple[str, list[Target]]:
    load = machine.load()
    sizes = tuple(only) if only else QUICK_SIZES if quick else SIZES
    scratch = fresh(DATA_DIR / "runs-scale")
    results: dict[int, Measured] = {}
    try:
        for files in sizes:
            results[files] = measure(files, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tg = targets(results, sizes[0])
    load = f"{load}, {machine.load_now()} at the end"
    return section(results, tg, quick, load), tg
