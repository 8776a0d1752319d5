"""Run vsync's benchmarks: ``make bench`` (full) or ``make bench-quick``.

    .venv/bin/python bench/run.py [--quick] [--only GROUP ...]

Groups (issue 6's scenarios):

    commit    a, b: commit a new 1 GiB incompressible / log-text file (vsync, git, restic)
    edit      c: commit after a 10-byte insertion in each large file (vsync, restic)
    small     d, e: 50,000 small files: commit, commit after 1% modified, no-op status (git)
    memory    f: peak RSS committing a 4 GiB file
    scale     h: 50,000 and 1,000,000 tiny files: no-op status, commit after 1%, peak RSS (git)
    push      g: push over SSH to 127.0.0.1 against rsync (bench/push_ssh.py)
    plot      commit throughput by file size (1 MiB .. 1 GiB), PNG (needs matplotlib)
    chunking  chunk-size parameters (docs/format.md's measured tables)
    watch     edit-to-other-copy latency: vsync watch over SSH against Syncthing (issue 13)
    goback    k: checkout / restore of a 1 GiB file after a 10-byte edit, on ext4 and a
              loop-mounted reflink file system (XFS or btrfs), against cp and restic (issue 14)
    receive   l: clone and pull over SSH from 127.0.0.1 against rsync pulling the same
              files (bench/receive_ssh.py, issue 14)
    crypt     m: push and fetch of the 1 GiB files to an encrypted path remote beside a
              plain one and restic backup (bench/crypt_push.py, issue 15)
    s3        push to an encrypted s3:// remote on a local SeaweedFS against restic
              backup to an s3: repository on it (bench/push_s3.py, issue 16)
    mixed     n: a mixed folder (photos, text, large files, many small ones): first
              commit (git, restic), push and sync over SSH (rsync), then an edit
              committed and pushed (rsync, restic) (bench/mixed.py, issue 17)

A full run (``make bench``: every group) rewrites every section of
docs/benchmarks.md, the plot PNG under docs/ and the measured tables of
docs/format.md, and writes the "Summary" table of targets from this run's figures
alone, headed once by the run's command, commit, date, machine and load. A run with
``--only GROUP`` rewrites that group's sections (each names its own run under its
heading) and leaves the summary as it is: it never mixes runs. ``--no-docs`` runs
full size but writes only under bench/results/. ``--quick`` scales the inputs down (32 MiB files,
64 MiB for push and receive, 2,000 small files, 256 MiB for the memory test, 2,000 and
20,000 tiny files for scale), skips the
plot and the chunking tables unless asked with --only, and writes only under
bench/results/. Every run writes bench/results/<group>[-quick].md and
targets[-quick].json (this run's targets only), and a full run summary[-quick].md.
Inputs are generated once into bench/data/ (gitignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine
import report
from measure import Target, row
from report import SUMMARY, vsync_version, with_run_line, write_section

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
GROUPS = (
    "commit", "edit", "small", "memory", "scale", "push", "plot", "chunking", "watch", "goback",
    "receive", "crypt", "s3", "mixed",
)  # fmt: skip
QUICK_DEFAULT = (
    "commit", "edit", "small", "memory", "scale", "push", "goback", "receive", "crypt", "mixed",
)  # fmt: skip
STARTED = time.perf_counter()
DOCS = True  # write docs/benchmarks.md (a full run without --no-docs)
ORDER = "abcdefghijklmno"


def checkout() -> str:
    """The commit of the checkout being measured, with "+changes" if it is dirty."""
    root = BENCH_DIR.parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "vsync")
    return head + (" + uncommitted changes in vsync/" if dirty else "")


def _med(samples: list[object], attr: str) -> float:
    vals = sorted(getattr(s, attr) for s in samples)
    return float(vals[len(vals) // 2])


def _against_rsync(
    scen: str, phase: str, push: float, commit: float, rsyncs: list[Any]
) -> list[Target]:
    """vsync's push time, then its commit + push time (for information), against each
    rsync's median time of ``phase`` (``initial`` or ``incremental``)."""
    out = []
    for rs in rsyncs:
        t = push / _med(getattr(rs, phase), "seconds")
        out.append(Target(scen, f"vsync push time / rsync ({rs.cipher}) time", f"{t:.2f}",
                          "<= 1", _verdict(t, 1.0)))  # fmt: skip
    for rs in rsyncs:
        t = (commit + push) / _med(getattr(rs, phase), "seconds")
        out.append(Target(scen, f"vsync commit + push time / rsync ({rs.cipher}) time",
                          f"{t:.2f}", "-", "-"))  # fmt: skip
    return out


def push_targets(results: object) -> list[Target]:
    """Targets from bench/push_ssh.py's result, as far as its shape is known: the
    initial push against rsync with OpenSSH's default cipher and with vsync's own, the
    same with the commit that chunked the data added to vsync's time (for information),
    the push after the edit, and sending a new file with ``vsync sync``."""
    scen_i = "g. initial push over SSH"
    scen_n = "g. push after the 10-byte insertion"
    try:
        out: list[Target] = []
        for inp, rows in results:  # type: ignore[attr-defined]
            vs, rsyncs = rows[0], rows[1:]

            def mid(vals: list[float]) -> float:
                return sorted(vals)[len(vals) // 2]

            out += _against_rsync(scen_i, "initial", _med(vs.initial, "seconds"),
                                  mid(vs.initial_commit_seconds), rsyncs)  # fmt: skip
            rs = rsyncs[0]
            bn = _med(vs.incremental, "wire") / _med(rs.incremental, "wire")
            out.append(Target(scen_n, f"vsync bytes / rsync ({rs.cipher}) bytes", f"{bn:.2f}",
                              "<= 1.5", _verdict(bn, 1.5)))  # fmt: skip
            out += _against_rsync(scen_n, "incremental", _med(vs.incremental, "seconds"),
                                  mid(vs.commit_seconds), rsyncs)  # fmt: skip
            gcm = rows[2]
            if vs.send and gcm.send:
                ts = _med(vs.send, "seconds") / _med(gcm.send, "seconds")
                what = f"vsync time / rsync ({gcm.cipher}) time"
                out.append(
                    Target("g. send a new file: vsync sync", what, f"{ts:.2f}", "<= 1.1",
                           _verdict(ts, 1.1))
                )  # fmt: skip
            del inp
        return out
    except (AttributeError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return [Target("g. push over SSH", "see the push section", "-", "-", "-")]


def _verdict(value: float, target: float) -> str:
    from measure import verdict

    return verdict(value, target, False)


def run_line(command: str, full: bool) -> str:
    """The line under each section this run writes: command, commit, date (UTC)."""
    whose = (
        "the run the summary is from"
        if full
        else "a run of this group alone: the summary is from the full run it names"
    )
    return (
        f"{report.RUN_PREFIX}`{command}` at commit {checkout()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({whose})."
    )


def save_targets(targets: dict[str, list[Target]], quick: bool, command: str, full: bool) -> None:
    """This run's targets, group by group, in bench/results/targets[-quick].json (only
    this run's: nothing of an earlier run is kept)."""
    path = RESULTS / f"targets{'-quick' if quick else ''}.json"
    data = {
        "command": command,
        "full": full,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "checkout": checkout(),
        "groups": {g: [t.__dict__ for t in tg] for g, tg in targets.items()},
    }
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def summary(
    targets: list[Target],
    quick: bool,
    command: str,
    started: str,
    load_start: str,
    failed: dict[str, str] | None = None,
) -> str:
    """The summary table: every target of this one run, none from any other. Its head
    says once which run it is (command, commit, date, machine, load)."""
    ordered = sorted(targets, key=lambda t: ORDER.find(t.scenario[:1]))
    rows = [row("scenario", "measure", "value", "target", "result"), "|---|---|---:|---|---|"]
    rows += [row(t.scenario, t.measure, t.value, t.target, t.verdict) for t in ordered]
    met = sum(t.verdict == "met" for t in ordered)
    with_target = sum(t.target != "-" for t in ordered)
    size = "Scaled down (`--quick`): not the sizes of the issues' targets. " if quick else ""
    head = f"""Every figure below is from one run: `{command}` at commit {checkout()}, started
{started}, on {machine.describe()}; vsync {vsync_version()}; {load_start},
{machine.load_now()} at the end. {size}Each target is a ratio against its peer measured
in the same run (so that load from other work on the machine touches both sides), or an
absolute figure; {met} of {with_target} targets met ("missed by F x" is the factor still
to gain; rows whose target is "-" are for information). The sections below give each
scenario's method and tables; each names the run it is from under its heading. A run of
one group (`.venv/bin/python bench/run.py --only GROUP`) rewrites that group's section
only, never this summary; `make bench` rewrites everything."""
    table = "\n".join(rows)
    if failed:
        head += (
            " Groups that failed in this run, so none of their targets is here: "
            + "; ".join(f"{group} ({why})" for group, why in sorted(failed.items()))
            + "."
        )
    return f"{SUMMARY}\n\n{textwrap.fill(' '.join(head.split()), 88)}\n\n{table}\n"


def finish(
    targets: dict[str, list[Target]],
    quick: bool,
    command: str,
    full: bool,
    started: str,
    load_start: str,
    failed: dict[str, str] | None = None,
) -> None:
    """Save this run's targets; a full run writes the summary from them alone (naming the
    groups that failed in it), a run of some groups leaves the summary as it is (it never
    mixes runs)."""
    save_targets(targets, quick, command, full)
    if full:
        flat = [t for tg in targets.values() for t in tg]
        body = summary(flat, quick, command, started, load_start, failed)
        publish("summary", [(SUMMARY, body)], quick)
    elif targets:
        print("a run of some groups: the summary of docs/benchmarks.md is left as it is")


def publish(group: str, sections: list[tuple[str, str]], quick: bool) -> None:
    print(f"[{group} done, {time.perf_counter() - STARTED:.0f} s since the start]", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # the summary names its run in its own words; every other section under a run line
    text = "\n\n".join(
        (t if h.startswith(SUMMARY) else with_run_line(t)).strip("\n") for h, t in sections
    )
    text += "\n"
    (RESULTS / f"{group}{'-quick' if quick else ''}.md").write_text(text, encoding="utf-8")
    if DOCS:
        for heading, t in sections:
            write_section(heading, t)
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small inputs; docs left unchanged")
    p.add_argument("--only", choices=GROUPS, action="append", help="run only this group")
    p.add_argument(
        "--no-docs", action="store_true", help="full size, but write only under bench/results/"
    )
    p.add_argument(
        "--scale-sizes",
        metavar="N,N",
        help="file counts for the scale group instead of 50,000 and 1,000,000",
    )
    args = p.parse_args(argv)
    quick: bool = args.quick
    global DOCS
    DOCS = not (quick or args.no_docs)
    groups = args.only or list(QUICK_DEFAULT if quick else GROUPS)
    # A full run is every group of its mode (``make bench`` or ``make bench-quick``): it
    # alone writes the summary. ``--only`` rewrites its groups' sections and nothing else.
    full = not args.only or set(groups) >= set(QUICK_DEFAULT if quick else GROUPS)
    if full:
        command = "make bench-quick" if quick else "make bench"
    else:
        only = " ".join(f"--only {g}" for g in groups)
        command = f"bench/run.py{' --quick' if quick else ''} {only}"
    report.RUN_LINE = run_line(command, full)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = machine.load()
    RESULTS.mkdir(parents=True, exist_ok=True)
    targets: dict[str, list[Target]] = {}

    failed: dict[str, str] = {}  # group -> why it failed: the run goes on without it

    def attempt(group: str, step: Callable[[], None]) -> None:
        """Run one group; if it fails, say so and go on with the others (the summary then
        names it as failed in this run, and the run ends with exit code 1)."""
        try:
            step()
        except (Exception, SystemExit) as exc:  # a peer's or server's failure: one group
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            failed[group] = why
            print(f"[{group} FAILED, {time.perf_counter() - STARTED:.0f} s since the start: "
                  f"{why}]", flush=True)  # fmt: skip

    def step_commit() -> None:
        import commit_throughput

        text, tg, _ = commit_throughput.main(
            quick, only_sizes="commit" not in groups, with_sizes="plot" in groups, docs=DOCS
        )
        if "commit" in groups:
            publish("commit", [(commit_throughput.HEADING, text)], quick)
            targets["commit"] = tg
        else:
            print(f"plot written ({text})", flush=True)

    if "commit" in groups or "plot" in groups:
        attempt("commit", step_commit)

    def step_edit() -> None:
        import edit_commit

        text, tg = edit_commit.main(quick)
        publish("edit", [(edit_commit.HEADING, text)], quick)
        targets["edit"] = tg

    if "edit" in groups:
        attempt("edit", step_edit)

    def step_small() -> None:
        import small_files

        sections, tg = small_files.main(quick)
        publish("small", sections, quick)
        targets["small"] = tg

    if "small" in groups:
        attempt("small", step_small)

    def step_memory() -> None:
        import memory

        text, tg = memory.main(quick)
        publish("memory", [(memory.HEADING, text)], quick)
        targets["memory"] = tg

    if "memory" in groups:
        attempt("memory", step_memory)

    def step_scale() -> None:
        import scale

        sizes = [int(n) for n in args.scale_sizes.split(",")] if args.scale_sizes else None
        text, tg = scale.main(quick, sizes)
        publish("scale", [(scale.HEADING, text)], quick)
        targets["scale"] = tg

    if "scale" in groups:
        attempt("scale", step_scale)

    def step_push() -> None:
        import push_ssh

        results = push_ssh.main(quick=quick, update_docs=DOCS)
        print(f"[push done, {time.perf_counter() - STARTED:.0f} s since the start]", flush=True)
        targets["push"] = push_targets(results)

    if "push" in groups:
        attempt("push", step_push)

    def step_chunking() -> None:
        import chunk_params

        if quick or DOCS:
            chunk_params.main(quick=quick)
        else:
            print("chunking skipped: at full size it rewrites docs/format.md (no --no-docs)")

    if "chunking" in groups:
        attempt("chunking", step_chunking)

    def step_goback() -> None:
        import goback

        text, tg = goback.main(quick)
        publish("goback", [(goback.HEADING, text)], quick)
        targets["goback"] = tg

    if "goback" in groups:
        attempt("goback", step_goback)

    def step_receive() -> None:
        import receive_ssh

        text, tg = receive_ssh.main(quick, update_docs=DOCS)
        publish("receive", [(receive_ssh.HEADING, text)], quick)
        targets["receive"] = tg

    if "receive" in groups:
        attempt("receive", step_receive)

    def step_crypt() -> None:
        import crypt_push

        text, tg = crypt_push.main(quick)
        publish("crypt", [(crypt_push.HEADING, text)], quick)
        targets["crypt"] = tg

    if "crypt" in groups:
        attempt("crypt", step_crypt)

    def step_s3() -> None:
        import push_s3

        text, tg, _results = push_s3.main(quick, 1 if quick else 3, update_docs=False)
        publish("s3", [(push_s3.HEADING, text)], quick)
        targets["s3"] = tg

    if "s3" in groups:
        attempt("s3", step_s3)

    def step_watch() -> None:
        import watch_latency

        text, _figures = watch_latency.main(quick)
        publish("watch", [(watch_latency.HEADING, text)], quick)

    if "watch" in groups:
        attempt("watch", step_watch)

    def step_mixed() -> None:
        import mixed

        text, tg = mixed.main(quick)
        publish("mixed", [(mixed.HEADING, text)], quick)
        targets["mixed"] = tg

    if "mixed" in groups:
        attempt("mixed", step_mixed)
    finish(targets, quick, command, full, started, load_start, failed)
    print(f"benchmarks done in {time.perf_counter() - STARTED:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
