"""The cost of encryption: push and fetch through an encrypted path remote (issue 15).

For each input (1 GiB incompressible, 1 GiB log text; 32 MiB each with
``--quick``), committed once in a folder (not timed), rounds of:

- ``vsync push`` to a new plain bare repository on a path (``vsync init --bare``
  not timed);
- ``vsync push`` to a new encrypted path remote (``vsync init --bare --encrypted``
  not timed; the push derives the key with the default scrypt cost, 64 MiB);
- ``restic backup`` of the same file (its folder, without ``.vsync/``) to a new
  local repository (init not timed);
- ``vsync fetch`` from each remote into a new, empty repository (no working
  folder is written: the transfer alone).

``sync`` runs before every timed step (as in bench/goback.py), so that no step
pays for the writeback of the one before.

The targets are ratios of the same run: encrypted push / plain push (issue 15:
at most 1.25) and encrypted fetch / plain fetch. Peak RSS from ``/usr/bin/time -v``.

Run through ``bench/run.py`` (``--only crypt``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import machine
from commit_throughput import Input, inputs, restic_backup, restic_repo
from measure import (
    MIB,
    VSYNC,
    Series,
    Target,
    du_bytes,
    fresh,
    row,
    run,
    tool_env,
    tool_versions,
    verdict,
)
from report import human, vsync_version, warm

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## Encrypted remotes: push and fetch (issue 15)"
RUNS = 5
PASSWORD = "vsync bench passphrase"
STEPS = ("push", "push-enc", "restic", "fetch", "fetch-enc")
LABEL = {
    "push": "`vsync push` to a plain path remote",
    "push-enc": "`vsync push` to an encrypted path remote",
    "restic": "`restic backup` to a local repository",
    "fetch": "`vsync fetch` from the plain remote",
    "fetch-enc": "`vsync fetch` from the encrypted remote",
}
PUSH_TARGET = 1.25
RSS_LIMIT = 150 * MIB


def _round(inp: Input, work: Path, scratch: Path, series: dict[str, Series]) -> None:
    env = tool_env(VSYNC_PASSWORD=PASSWORD)
    for kind in ("plain", "enc"):
        remote = scratch / f"remote-{kind}"
        if remote.exists():
            shutil.rmtree(remote)
        if kind == "plain":
            run([*VSYNC, "init", "--bare", str(remote)], scratch, env)
        else:
            run([*VSYNC, "init", "--bare", "--encrypted", str(remote)], scratch, env)
        if _has_remote(work):  # a new remote each round: forget the last one's id
            run([*VSYNC, "remote", "remove", "bench"], work, env)
        run([*VSYNC, "remote", "add", "bench", str(remote)], work, env)
        step = "push" if kind == "plain" else "push-enc"
        print(f"  {inp.label}: {LABEL[step]}", flush=True)
        os.sync()  # no step pays for an earlier one's writeback
        series[step].runs.append(run([*VSYNC, "push", "-q", "bench"], work, env))
        series[step].stored.append(du_bytes(remote))
        dest = fresh(scratch / f"fetch-{kind}")
        run([*VSYNC, "init"], dest, env)
        run([*VSYNC, "remote", "add", "origin", str(remote)], dest, env)
        step = "fetch" if kind == "plain" else "fetch-enc"
        print(f"  {inp.label}: {LABEL[step]}", flush=True)
        os.sync()
        series[step].runs.append(run([*VSYNC, "fetch", "-q"], dest, env))
        series[step].stored.append(du_bytes(dest / ".vsync"))
        shutil.rmtree(dest)
    print(f"  {inp.label}: {LABEL['restic']}", flush=True)
    repo = scratch / "restic-repo"
    base = restic_repo(repo, scratch / "restic-cache", env)
    os.sync()
    series["restic"].runs.append(restic_backup(base, work / "data", env))  # not .vsync/
    series["restic"].stored.append(du_bytes(repo))
    shutil.rmtree(repo)


def _has_remote(work: Path) -> bool:
    return "[remote" in (work / ".vsync" / "config").read_text(encoding="utf-8")


def measure(inp: Input, scratch: Path, runs: int) -> dict[str, Series]:
    env = tool_env()
    work = fresh(scratch / "work")
    path = inp.ensure()
    (work / "data").mkdir()
    target = work / "data" / inp.name
    target.hardlink_to(path)
    run([*VSYNC, "init"], work, env)
    run([*VSYNC, "commit", "-q", "-m", "bench"], work, env)
    warm(path)
    series = {step: Series(step) for step in STEPS}
    for i in range(runs):
        print(f" round {i + 1}/{runs}", flush=True)
        _round(inp, work, scratch, series)
    shutil.rmtree(work)
    return series


def targets(inp: Input, s: dict[str, Series]) -> list[Target]:
    scen = f"m. push a new {human(inp.size)} {inp.label} file to an encrypted path remote"
    push = s["push-enc"].seconds / s["push"].seconds
    fetch = s["fetch-enc"].seconds / s["fetch"].seconds
    rss = max(s["push-enc"].peak_rss, s["fetch-enc"].peak_rss)
    return [
        Target(scen, "encrypted push time / plain push time", f"{push:.2f}", f"<= {PUSH_TARGET}",
               verdict(push, PUSH_TARGET, False)),
        Target(scen, "encrypted fetch time / plain fetch time", f"{fetch:.2f}", "-", "-"),
        Target(scen, "peak RSS, encrypted push and fetch", human(rss), f"< {human(RSS_LIMIT)}",
               verdict(rss, RSS_LIMIT, False)),
    ]  # fmt: skip


def table(inp: Input, s: dict[str, Series]) -> str:
    lines = [
        f"### {human(inp.size)} {inp.label}",
        "",
        row("step", "time (median, min-max)", "CPU", "peak RSS", "stored", "time / plain"),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for step in STEPS:
        ser = s[step]
        base = s["fetch" if step.startswith("fetch") else "push"].seconds
        ratio = f"{ser.seconds / base:.2f}x" if base > 0 else "-"
        lines.append(
            row(LABEL[step], ser.time_cell(), f"{ser.cpu:.2f} s", human(ser.peak_rss),
                human(ser.bytes_stored), ratio)
        )  # fmt: skip
    return "\n".join(lines)


def main(quick: bool) -> tuple[str, list[Target]]:
    scratch = fresh(DATA_DIR / "crypt-scratch")
    runs = RUNS  # as many rounds at either size: one round of a quick run is all noise
    parts, tg = [], []
    try:
        for inp in inputs(quick):
            print(f"crypt: {inp.label} ({human(inp.size)})", flush=True)
            s = measure(inp, scratch, runs)
            t = targets(inp, s)
            tg += t
            parts.append(table(inp, s))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = [row("scenario", "measure", "value", "target", "result"), "|---|---|---:|---|---|"]
    summary += [row(t.scenario, t.measure, t.value, t.target, t.verdict) for t in tg]
    text = f"""{HEADING}

Push and fetch of each file to a plain path remote and to an encrypted one
(`vsync init --bare --encrypted`, default scrypt cost), beside `restic backup`
of the same folder to a local repository, in the same run; {runs} round(s), medians.
Fetch goes into a new empty repository (no working folder written). Before
every timed step `sync` writes dirty pages out, so that no step pays for an
earlier one's writeback. A plain push to a path is `vsync serve` on the same
machine storing what it receives; an encrypted push writes sealed bytes
(nothing of a local pack can be reused). Every
encrypted command derives its key once with scrypt at the default cost
(log2n 16, r 8, p 2: 64 MiB of memory, before any data moves, and freed
before it does): the same whatever the file size; what the data path holds
is bounded by three 16 MiB buffers on push (the packs being written, the one
being sealed and the records it is sealed from), 4 MiB ranges on fetch. Machine:
{machine.describe()}; vsync {vsync_version()}; {tool_versions()}.
{"Quick run: 32 MiB inputs." if quick else ""}
Regenerate with `.venv/bin/python bench/run.py --only crypt`.

{chr(10).join(summary)}

{(chr(10) * 2).join(parts)}
"""
    return text, tg
