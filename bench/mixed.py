"""A mixed folder (issue 17, scenario n): commit, push and an edit, against git, restic, rsync.

Real folders are not all one kind of data. :func:`datagen.mixed_folder` makes one
from a seed (:data:`datagen.MIXED_FULL`, :data:`datagen.MIXED_QUICK` with
``--quick``): photo-like incompressible files, two large files (one
incompressible, one log text), log files, source code, and thousands of small
notes and thumbnails. :func:`datagen.mixed_edit` makes the same folder after a
day's work (files modified, added and removed). Both are generated once into
bench/data/ and each round links them into fresh folders. Each round, tools
interleaved:

- vsync: ``vsync init`` (not timed), ``vsync commit`` (timed), ``vsync push
  --create`` over SSH to 127.0.0.1 (timed); the folder becomes the edited one
  (changed files swapped in by rename), ``vsync commit`` and ``vsync push``
  (each timed);
- git: ``git init`` (not timed), ``git add -A && git commit`` (timed);
- restic: a fresh repository (not timed), ``restic backup`` (timed), the edit,
  ``restic backup`` again (timed);
- rsync with vsync's cipher: ``rsync -a`` of the folder to an empty destination,
  then ``rsync -a --delete --no-whole-file`` of the edited folder into it;
- vsync sync: a fresh repository whose remote is an empty bare repository over
  SSH (none of that timed), ``vsync sync``: commit and push in one command.

Run through ``bench/run.py`` (``--only mixed``; ``make bench`` / ``make bench-quick``).
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datagen
import machine
import push_ssh
from measure import (
    VSYNC,
    Series,
    Target,
    du_bytes,
    ensure_command,
    fresh,
    mib_s,
    row,
    run,
    run_all,
    tool_env,
    tool_versions,
    verdict,
)
from push_ssh import GCM, Sample
from report import human, vsync_version, warm

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## A mixed folder (issue 17)"
RUNS = 3
SEED = 17
EDIT_SEED = 71
# Issue 6's targets that apply to a folder of every kind of data: commit speed against
# git (the lower of its two large-file targets, 5x for log text; 10x for incompressible
# data), against restic (3x) and stored bytes against restic's; push no slower than
# rsync with the same cipher, and after an edit no more than 1.5x its bytes; a commit
# after an edit no slower than restic's backup and storing no more; peak memory.
GIT_SPEED = 5.0
RESTIC_SPEED = 3.0
SEND_TARGET = push_ssh.SEND_TARGET  # issue 14: vsync sync / rsync with the same cipher
RSS_LIMIT = 150 * 1024 * 1024


def spec(quick: bool) -> datagen.MixedSpec:
    return datagen.MIXED_QUICK if quick else datagen.MIXED_FULL


def folders(quick: bool) -> tuple[Path, Path]:
    """The folder and its edited version, generated once into bench/data/."""
    size = "quick" if quick else "full"
    a = DATA_DIR / f"mixed-{SEED}-{size}"
    b = DATA_DIR / f"mixed-{SEED}-{size}-edit-{EDIT_SEED}"
    if not a.is_dir():
        print(f"generating the mixed folder ({size}) ...", flush=True)
    datagen.mixed_folder(SEED, a, spec(quick))
    if not b.is_dir():
        print("generating its edited version ...", flush=True)
    datagen.mixed_edit(a, b, EDIT_SEED, spec(quick))
    return a, b


@dataclass
class Result:
    first: dict[str, Series] = field(
        default_factory=lambda: {t: Series(t) for t in ("vsync", "git", "restic")}
    )
    edit: dict[str, Series] = field(
        default_factory=lambda: {t: Series(t) for t in ("vsync", "restic")}
    )
    push: list[Sample] = field(default_factory=list)  # vsync push, the first
    push_edit: list[Sample] = field(default_factory=list)
    rsync: list[Sample] = field(default_factory=list)
    rsync_edit: list[Sample] = field(default_factory=list)
    sync: list[Sample] = field(default_factory=list)  # vsync sync: commit + push

    def vsync_peak(self) -> int:
        samples = self.push + self.push_edit + self.sync
        runs = self.first["vsync"].runs + self.edit["vsync"].runs
        return max([s.peak_rss for s in samples] + [r.peak_rss for r in runs])


def warm_tree(root: Path) -> None:
    warm(*datagen.tree_files(root))


def vsync_round(a: Path, b: Path, res: Result, sshd: Any, scratch: Path) -> None:
    env = push_ssh.vsync_env(sshd)
    work = fresh(scratch / "vsync-work")
    dest = scratch / "vsync-dest"
    try:
        datagen.link_tree(a, work)
        warm_tree(work)
        run([*VSYNC, "init"], work, env)
        res.first["vsync"].runs.append(run([*VSYNC, "commit", "-q", "-m", "first"], work, env))
        before = du_bytes(work / ".vsync")
        res.first["vsync"].stored.append(before)
        url = sshd.url(dest)
        res.push.append(push_ssh.vsync_push(url, sshd, env, work, create=True))
        datagen.relink(work, b)
        warm_tree(work)
        res.edit["vsync"].runs.append(run([*VSYNC, "commit", "-q", "-m", "edit"], work, env))
        grew = du_bytes(work / ".vsync") - before
        if grew <= 0:
            raise SystemExit("vsync stored nothing new after the edit")
        res.edit["vsync"].stored.append(grew)
        res.push_edit.append(push_ssh.vsync_push(url, sshd, env, work, create=False))
        head = push_ssh.branch_head(work / ".vsync" / "git")
        if head != push_ssh.branch_head(dest / "git"):
            raise SystemExit("vsync push left the remote behind the local branch")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)


def git_round(a: Path, res: Result, scratch: Path) -> None:
    env = tool_env()
    work = fresh(scratch / "git-work")
    try:
        datagen.link_tree(a, work)
        warm_tree(work)
        run(["git", "init", "-q"], work, env)
        cmds = [["git", "add", "-A"], ["git", "commit", "-q", "-m", "first"]]
        res.first["git"].runs.append(run_all(cmds, work, env))
        res.first["git"].stored.append(du_bytes(work / ".git"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restic_round(a: Path, b: Path, res: Result, scratch: Path) -> None:
    from commit_throughput import restic_backup, restic_repo

    env = tool_env()
    work = fresh(scratch / "restic-work")
    repo = scratch / "restic-repo"
    try:
        datagen.link_tree(a, work)
        warm_tree(work)
        base = restic_repo(repo, scratch / "restic-cache", env)
        res.first["restic"].runs.append(restic_backup(base, work, env))
        before = du_bytes(repo)
        res.first["restic"].stored.append(before)
        datagen.relink(work, b)
        warm_tree(work)
        res.edit["restic"].runs.append(restic_backup(base, work, env))
        grew = du_bytes(repo) - before
        if grew <= 0:
            raise SystemExit("restic stored nothing new after the edit")
        res.edit["restic"].stored.append(grew)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(repo, ignore_errors=True)


def rsync_round(a: Path, b: Path, res: Result, sshd: Any, scratch: Path) -> None:
    env = sshd.env()
    rsh = push_ssh.ssh_command(sshd, GCM)
    dest = fresh(scratch / "rsync-dest")
    try:
        warm_tree(a)
        cmd = ["rsync", "-a", "--stats", "-e", rsh, f"{a}/", f"127.0.0.1:{dest}/"]
        res.rsync.append(push_ssh.rsync_sample(cmd, env, sshd))
        warm_tree(b)
        cmd = ["rsync", "-a", "--delete", "--no-whole-file", "--stats", "-e", rsh]
        cmd += [f"{b}/", f"127.0.0.1:{dest}/"]
        res.rsync_edit.append(push_ssh.rsync_sample(cmd, env, sshd))
        got = {str(p.relative_to(dest)) for p in datagen.tree_files(dest)}
        want = {str(p.relative_to(b)) for p in datagen.tree_files(b)}
        if got != want:
            raise SystemExit("rsync left a destination whose files differ from the source's")
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def sync_round(a: Path, res: Result, sshd: Any, scratch: Path) -> None:
    """``vsync sync`` of the folder, not yet committed, into an empty bare remote."""
    env = push_ssh.vsync_env(sshd)
    src = fresh(scratch / "sync-src")
    dest = scratch / "sync-dest"
    try:
        run([*VSYNC, "init", "--bare", str(dest)], scratch, env)
        run([*VSYNC, "init"], src, env)
        run([*VSYNC, "remote", "add", "origin", sshd.url(dest)], src, env)
        datagen.link_tree(a, src)
        warm_tree(src)
        cmd = [*VSYNC, "sync", "--porcelain", "--remote-cmd", sshd.remote_cmd]
        proc = push_ssh.run(cmd, env, cwd=src, sshd=sshd)
        out = push_ssh.porcelain(proc.stdout)
        if out.get("pushed") != "1":
            raise SystemExit(f"vsync sync pushed nothing:\n{proc.stdout}")
        res.sync.append(push_ssh.sync_sample(proc, out))
    finally:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)


def measure(a: Path, b: Path, runs: int, scratch: Path) -> Result:
    ensure_command("rsync", "rsync")
    sshd = push_ssh.load_sshd_helper().start_sshd(scratch / "sshd")
    res = Result()
    try:
        for i in range(runs):
            steps: list[tuple[str, Callable[[], None]]] = [
                ("vsync", lambda: vsync_round(a, b, res, sshd, scratch)),
                ("git", lambda: git_round(a, res, scratch)),
                ("restic", lambda: restic_round(a, b, res, scratch)),
                (f"rsync -c {GCM}", lambda: rsync_round(a, b, res, sshd, scratch)),
                ("vsync sync", lambda: sync_round(a, res, sshd, scratch)),
            ]
            for name, step in steps:
                print(f"  run {i + 1}/{runs}: {name}", flush=True)
                step()
    finally:
        sshd.stop()
    return res


# -- the report --------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def secs(samples: list[Sample]) -> float:
    return med([s.seconds for s in samples])


def wire(samples: list[Sample]) -> float:
    return med([s.wire for s in samples])


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{med(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def targets(res: Result, scen: str) -> list[Target]:
    v, g, r = (res.first[t] for t in ("vsync", "git", "restic"))
    git_x = g.seconds / v.seconds
    restic_x = r.seconds / v.seconds
    stored = v.bytes_stored / r.bytes_stored
    push = secs(res.push) / secs(res.rsync)
    commit_push = (v.seconds + secs(res.push)) / secs(res.rsync)
    sync = secs(res.sync) / secs(res.rsync)
    ve, re_ = res.edit["vsync"], res.edit["restic"]
    e_commit = ve.seconds / re_.seconds
    e_bytes = ve.bytes_stored / max(1, re_.bytes_stored)
    e_push = secs(res.push_edit) / secs(res.rsync_edit)
    e_wire = wire(res.push_edit) / wire(res.rsync_edit)
    e_both = (ve.seconds + secs(res.push_edit)) / secs(res.rsync_edit)
    peak = res.vsync_peak()
    rs = f"rsync ({GCM})"
    first, push_s, edit = f"{scen}: first commit", f"{scen}: first push over SSH", f"{scen}: edit"
    return [
        Target(first, "vsync speed / git speed", f"{git_x:.2f}x", f">= {GIT_SPEED:g}x",
               verdict(git_x, GIT_SPEED, True)),
        Target(first, "vsync speed / restic speed", f"{restic_x:.2f}x", f">= {RESTIC_SPEED:g}x",
               verdict(restic_x, RESTIC_SPEED, True)),
        Target(first, "vsync stored / restic stored", f"{stored:.3f}", "<= 1",
               verdict(stored, 1.0, False)),
        Target(push_s, f"vsync push time / {rs} time", f"{push:.2f}", "<= 1",
               verdict(push, 1.0, False)),
        Target(push_s, f"vsync commit + push time / {rs} time", f"{commit_push:.2f}", "-", "-"),
        Target(push_s, f"vsync sync (commit and push in one) time / {rs} time", f"{sync:.2f}",
               f"<= {SEND_TARGET}", verdict(sync, SEND_TARGET, False)),
        Target(edit, "vsync commit time / restic backup time", f"{e_commit:.2f}", "<= 1",
               verdict(e_commit, 1.0, False)),
        Target(edit, "vsync new bytes stored / restic new bytes stored", f"{e_bytes:.2f}",
               "<= 1", verdict(e_bytes, 1.0, False)),
        Target(edit, f"vsync push time / {rs} time", f"{e_push:.2f}", "<= 1",
               verdict(e_push, 1.0, False)),
        Target(edit, f"vsync push bytes / {rs} bytes", f"{e_wire:.2f}", "<= 1.5",
               verdict(e_wire, 1.5, False)),
        Target(edit, f"vsync commit + push time / {rs} time", f"{e_both:.2f}", "-", "-"),
        Target(scen, "vsync peak RSS, any command", human(peak),
               f"< {human(RSS_LIMIT)}", verdict(peak, RSS_LIMIT, False)),
    ]  # fmt: skip


def composition(a: Path, b: Path) -> tuple[str, int, int, str]:
    """(a table of the folder by kind, its file count, its bytes, what the edit did)."""
    rows = [row("folder", "what", "files", "bytes", "file sizes"), "|---|---|---:|---:|---|"]
    count = total = 0
    for top, what in datagen.MIXED_KINDS.items():
        sizes = [p.stat().st_size for p in datagen.tree_files(a / top)]
        if not sizes:
            continue
        count += len(sizes)
        total += sum(sizes)
        rows.append(
            row(f"`{top}/`", what, f"{len(sizes):,}", human(sum(sizes)),
                f"{human(min(sizes))} - {human(max(sizes))}")
        )  # fmt: skip
    rows.append(row("all", "", f"{count:,}", human(total), ""))
    added, modified, removed = datagen.tree_diff(a, b)

    def size_of(root: Path, paths: list[str]) -> int:
        return sum((root / p).stat().st_size for p in paths)

    edit = (
        f"{len(modified):,} files modified ({human(size_of(b, modified))} now), "
        f"{len(added):,} added ({human(size_of(b, added))}), "
        f"{len(removed):,} removed ({human(size_of(a, removed))})"
    )
    return "\n".join(rows), count, total, edit


def section(res: Result, a: Path, b: Path, runs: int, quick: bool, load: str) -> str:
    kinds, count, total, edit = composition(a, b)
    tg = targets(res, f"n. mixed folder, {human(total)} in {count:,} files")
    first_rows = [
        row("tool", "timed", f"time, median of {runs} (min-max)", "throughput",
            "CPU (user+sys)", "stored", "peak RSS"),
        "|---|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    cmds = {
        "vsync": "`vsync commit` (init not timed)",
        "git": "`git add -A && git commit` (init not timed)",
        "restic": "`restic backup` (init not timed)",
    }
    for tool, s in res.first.items():
        first_rows.append(
            row(tool, cmds[tool], s.time_cell(), mib_s(total, s.seconds), f"{s.cpu:.2f} s",
                human(s.bytes_stored), human(s.peak_rss))
        )  # fmt: skip
    vcommit = res.first["vsync"]
    send_rows = [
        row("step", f"time, median of {runs} (min-max)", "sent + received", "client CPU",
            "server CPU", "client peak RSS"),
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip

    def sample_row(label: str, samples: list[Sample]) -> str:
        return row(
            label, spread([s.seconds for s in samples]), human(wire(samples)),
            f"{med([s.cpu for s in samples]):.2f} s",
            f"{med([s.server_cpu for s in samples]):.2f} s",
            human(max(s.peak_rss for s in samples)),
        )  # fmt: skip

    send_rows += [
        sample_row("`vsync push --create` (the folder committed before)", res.push),
        row("`vsync commit` + `vsync push` (medians added)",
            f"{vcommit.seconds + secs(res.push):.2f} s", "", "", "", ""),
        sample_row("`vsync sync` (commit and push in one command)", res.sync),
        sample_row(f"`rsync -a` (`-c {GCM}`)", res.rsync),
    ]  # fmt: skip
    edit_rows = [
        row("step", f"time, median of {runs} (min-max)", "new bytes stored / sent + received",
            "CPU (client)", "peak RSS"),
        "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for tool, label in (("vsync", "`vsync commit`"), ("restic", "second `restic backup`")):
        s = res.edit[tool]
        edit_rows.append(
            row(label, s.time_cell(), f"{human(s.bytes_stored)} stored", f"{s.cpu:.2f} s",
                human(s.peak_rss))
        )  # fmt: skip
    edit_rows += [
        row("`vsync push`", spread([s.seconds for s in res.push_edit]),
            f"{human(wire(res.push_edit))} sent + received",
            f"{med([s.cpu for s in res.push_edit]):.2f} s",
            human(max(s.peak_rss for s in res.push_edit))),
        row("`vsync commit` + `vsync push` (medians added)",
            f"{res.edit['vsync'].seconds + secs(res.push_edit):.2f} s", "", "", ""),
        row(f"`rsync -a --delete --no-whole-file` (`-c {GCM}`)",
            spread([s.seconds for s in res.rsync_edit]),
            f"{human(wire(res.rsync_edit))} sent + received",
            f"{med([s.cpu for s in res.rsync_edit]):.2f} s",
            human(max(s.peak_rss for s in res.rsync_edit))),
    ]  # fmt: skip
    target_rows = [row("scenario", "measure", "value", "target", "result")]
    target_rows.append("|---|---|---:|---|---|")
    target_rows += [row(t.scenario, t.measure, t.value, t.target, t.verdict) for t in tg]
    nl = "\n"
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; {push_ssh.version("rsync", "--version")}; {push_ssh.version("ssh", "-V")};
vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only mixed` (`bench/mixed.py`).

A folder like a real one, every size and byte from seed {SEED} (`bench/datagen.py`,
`mixed_folder`{", the `--quick` sizes" if quick else ""}):

{kinds}

The edit (`mixed_edit`, seed {EDIT_SEED}), a day's work: photos get their first 64 bytes
rewritten (a metadata edit), some are removed and new ones added; the log-text large file
and half the log files get lines appended; source files get a line replaced and one
appended, some are removed and new ones added; some notes and thumbnails are rewritten,
removed and added. In all {edit}. Changed files are swapped in by rename (new inodes),
the others are left as they were.

Each round, tools interleaved, every file read once before each timed step (page cache
warm), each tool into a fresh repository or destination: the first commit (vsync, git,
restic; making the empty repository not timed); vsync's push of that commit over SSH to
127.0.0.1 (a private sshd, `tests/sshd.py`) against `rsync -a` of the folder with the
same cipher (`{GCM}`); `vsync sync` of the folder, not yet committed, into an empty bare
remote over SSH (commit and push in one command, as a user syncs a new folder); then the
edit: `vsync commit` and `vsync push` against a second `restic backup` and `rsync -a
--delete --no-whole-file` into the destination of the first. Median of {runs} round(s)
(min-max). "stored" is `du -sb` of `.vsync`, `.git` or the restic repository; "new bytes
stored" what it grew by with the edit; "sent + received" what each tool counts on its
stream (vsync's `wire_sent` + `wire_received`, rsync's "Total bytes sent/received").
Peak RSS from `/usr/bin/time -v`; client CPU of rsync includes its `ssh`. The targets
are issue 6's that apply to such a folder: commit speed against git (>= {GIT_SPEED:g}x,
the lower of its two large-file targets) and restic (>= {RESTIC_SPEED:g}x), storing no
more than restic; push no slower than rsync with the same cipher, and after an edit no
more than 1.5x its bytes; issue 14's `vsync sync` within {SEND_TARGET}x of rsync; a commit
after the edit no slower than restic's backup and storing no more; peak memory under
{human(RSS_LIMIT)}.

First commit:

{nl.join(first_rows)}

First push over SSH:

{nl.join(send_rows)}

After the edit:

{nl.join(edit_rows)}

{nl.join(target_rows)}
"""


def main(quick: bool) -> tuple[str, list[Target]]:
    load = machine.load()
    a, b = folders(quick)
    runs = 1 if quick else RUNS
    scratch = fresh(DATA_DIR / "runs-mixed")
    try:
        print(f"scenario n: a mixed folder, {runs} round(s)", flush=True)
        res = measure(a, b, runs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = f"{load}, {machine.load_now()} at the end"
    text = section(res, a, b, runs, quick, load)
    _kinds, count, total, _edit = composition(a, b)
    return text, targets(res, f"n. mixed folder, {human(total)} in {count:,} files")
