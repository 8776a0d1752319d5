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

A full run does every group and rewrites its sections of docs/benchmarks.md
(and the "Summary (issue 6)" table of targets), the plot PNG under docs/ and
the measured tables of docs/format.md; ``--no-docs`` runs full size but writes
only under bench/results/. ``--quick`` scales the inputs down (32 MiB files,
64 MiB for push and receive, 2,000 small files, 256 MiB for the memory test, 2,000 and
20,000 tiny files for scale), skips the
plot and the chunking tables unless asked with --only, and writes only under
bench/results/. Every run writes bench/results/<group>[-quick].md and
targets[-quick].json (the summary reads the latter, group by group).
Inputs are generated once into bench/data/ (gitignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine
from measure import Target, row
from report import DOC, split_sections, vsync_version, write_section

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
GROUPS = (
    "commit", "edit", "small", "memory", "scale", "push", "plot", "chunking", "watch", "goback",
    "receive", "crypt",
)  # fmt: skip
QUICK_DEFAULT = (
    "commit", "edit", "small", "memory", "scale", "push", "goback", "receive", "crypt",
)  # fmt: skip
SUMMARY = "## Summary (issue 6)"
STARTED = time.perf_counter()
DOCS = True  # write docs/benchmarks.md (a full run without --no-docs)
ORDER = "abcdefghijklm"


def checkout() -> str:
    """The commit of the checkout being measured, with "+changes" if it is dirty."""
    root = BENCH_DIR.parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "vsync")
    return head + (" + uncommitted changes in vsync/" if dirty else "")


def push_targets(results: object) -> list[Target]:
    """Targets from bench/push_ssh.py's result, as far as its shape is known."""
    scen_i = "g. initial push over SSH"
    scen_n = "g. push after the 10-byte insertion"
    try:
        out: list[Target] = []
        for inp, rows in results:  # type: ignore[attr-defined]
            vs, rs = rows[0], rows[1]

            def med(samples: list[object], attr: str) -> float:
                vals = sorted(getattr(s, attr) for s in samples)
                return vals[len(vals) // 2]

            ti = med(vs.initial, "seconds") / med(rs.initial, "seconds")
            tn = med(vs.incremental, "seconds") / med(rs.incremental, "seconds")
            bn = med(vs.incremental, "wire") / med(rs.incremental, "wire")
            peer = f"rsync ({rs.cipher})"
            out += [
                Target(scen_i, f"vsync time / {peer} time", f"{ti:.2f}", "<= 1",
                       _verdict(ti, 1.0)),
                Target(scen_n, f"vsync bytes / {peer} bytes", f"{bn:.2f}", "<= 1.5",
                       _verdict(bn, 1.5)),
                Target(scen_n, f"vsync time / {peer} time", f"{tn:.2f}", "<= 1",
                       _verdict(tn, 1.0)),
            ]  # fmt: skip
            gcm = rows[2]
            if vs.send and gcm.send:
                ts = med(vs.send, "seconds") / med(gcm.send, "seconds")
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


def save_targets(group: str, targets: list[Target], quick: bool) -> dict[str, object]:
    path = RESULTS / f"targets{'-quick' if quick else ''}.json"
    data: dict[str, object] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    data[group] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "checkout": checkout(),
        "targets": [t.__dict__ for t in targets],
    }
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return data


def summary_rows(doc: str) -> list[tuple[Target, str]]:
    """The rows of the summary table in ``doc`` (docs/benchmarks.md as it is): (target,
    its "measured" cell)."""
    _intro, sections = split_sections(doc)
    out: list[tuple[Target, str]] = []
    for heading, text in sections:
        if not heading.startswith(SUMMARY):
            continue
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 6 or cells[0] in ("scenario", "") or set(cells[0]) <= set("-:"):
                continue
            out.append((Target(*cells[:5]), cells[5]))
    return out


def summary(data: dict[str, object], quick: bool, earlier: list[tuple[Target, str]]) -> str:
    """The summary table: the targets of ``data`` (this run and the results file), and
    from ``earlier`` (the table as docs/benchmarks.md has it) the rows of every scenario
    this run and the results file did not measure, each with its own date and commit."""
    targets: list[tuple[Target, str]] = []
    for entry in data.values():
        assert isinstance(entry, dict)
        for t in entry["targets"]:
            targets.append((Target(**t), f"{entry['date']}, {entry['checkout']}"))
    measured = {t.scenario[:1] for t, _when in targets}
    targets += [(t, when) for t, when in earlier if t.scenario[:1] not in measured]
    targets.sort(key=lambda tw: ORDER.find(tw[0].scenario[:1]))
    rows = [row("scenario", "measure", "value", "target", "result", "measured"),
            "|---|---|---:|---|---|---|"]  # fmt: skip
    rows += [row(t.scenario, t.measure, t.value, t.target, t.verdict, w) for t, w in targets]
    met = sum(t.verdict == "met" for t, _ in targets)
    return f"""{SUMMARY}

The targets of issues 6 and 13, each measured against its peer in the same run (ratios, so
that load from other work on the machine touches both sides). {met} of {len(targets)}
met. Machine: {machine.describe()}; vsync {vsync_version()}. "missed by F x" is the
factor still to gain. Regenerate everything with `make bench`
(`make bench-quick` for the small version), or one group with
`.venv/bin/python bench/run.py --only GROUP` (commit, edit, small, memory, scale, push,
plot, chunking, goback, receive, crypt)
(which keeps the other scenarios' rows as they were, each with the date and commit it
was measured at); the sections below give each scenario's table, method and peak memory.

{chr(10).join(rows)}
"""


def publish(group: str, sections: list[tuple[str, str]], quick: bool) -> None:
    print(f"[{group} done, {time.perf_counter() - STARTED:.0f} s since the start]", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(t.strip("\n") for _, t in sections) + "\n"
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {}

    if "commit" in groups or "plot" in groups:
        import commit_throughput

        text, tg, _ = commit_throughput.main(
            quick, only_sizes="commit" not in groups, with_sizes="plot" in groups, docs=DOCS
        )
        if "commit" in groups:
            publish("commit", [(commit_throughput.HEADING, text)], quick)
            data = save_targets("commit", tg, quick)
        else:
            print(f"plot written ({text})", flush=True)
    if "edit" in groups:
        import edit_commit

        text, tg = edit_commit.main(quick)
        publish("edit", [(edit_commit.HEADING, text)], quick)
        data = save_targets("edit", tg, quick)
    if "small" in groups:
        import small_files

        sections, tg = small_files.main(quick)
        publish("small", sections, quick)
        data = save_targets("small", tg, quick)
    if "memory" in groups:
        import memory

        text, tg = memory.main(quick)
        publish("memory", [(memory.HEADING, text)], quick)
        data = save_targets("memory", tg, quick)
    if "scale" in groups:
        import scale

        sizes = [int(n) for n in args.scale_sizes.split(",")] if args.scale_sizes else None
        text, tg = scale.main(quick, sizes)
        publish("scale", [(scale.HEADING, text)], quick)
        data = save_targets("scale", tg, quick)
    if "push" in groups:
        import push_ssh

        results = push_ssh.main(quick=quick, update_docs=DOCS)
        print(f"[push done, {time.perf_counter() - STARTED:.0f} s since the start]", flush=True)
        data = save_targets("push", push_targets(results), quick)
    if "chunking" in groups:
        import chunk_params

        if quick or DOCS:
            chunk_params.main(quick=quick)
        else:
            print("chunking skipped: at full size it rewrites docs/format.md (no --no-docs)")
    if "goback" in groups:
        import goback

        text, tg = goback.main(quick)
        publish("goback", [(goback.HEADING, text)], quick)
        data = save_targets("goback", tg, quick)
    if "receive" in groups:
        import receive_ssh

        text, tg = receive_ssh.main(quick, update_docs=DOCS)
        publish("receive", [(receive_ssh.HEADING, text)], quick)
        data = save_targets("receive", tg, quick)
    if "crypt" in groups:
        import crypt_push

        text, tg = crypt_push.main(quick)
        publish("crypt", [(crypt_push.HEADING, text)], quick)
        data = save_targets("crypt", tg, quick)
    if "watch" in groups:
        import watch_latency

        text, _figures = watch_latency.main(quick)
        publish("watch", [(watch_latency.HEADING, text)], quick)
    if data:
        earlier = summary_rows(DOC.read_text(encoding="utf-8")) if DOCS and DOC.exists() else []
        publish("summary", [(SUMMARY, summary(data, quick, earlier))], quick)
    print(f"benchmarks done in {time.perf_counter() - STARTED:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
