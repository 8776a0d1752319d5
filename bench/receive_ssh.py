"""Clone and pull over SSH from 127.0.0.1: ``vsync clone`` / ``vsync pull`` against rsync
pulling the same files (issue 14, "Receive").

The private OpenSSH ``sshd`` and the measuring helpers are bench/push_ssh.py's. The
server holds a bare vsync repository with two commits: the 1 GiB incompressible file
and the 1 GiB log-text file (64 MiB each with ``--quick``), then the same two files
each with 10 bytes inserted in the middle; beside it, two plain folders holding the
same two versions for rsync. Each tool does, median of three runs interleaved:

- clone: both files into an empty destination. vsync: ``vsync clone --porcelain
  ssh://127.0.0.1:PORT/server DEST`` with the server's branch on the first commit.
  rsync: ``rsync -a --stats -e ssh 127.0.0.1:OLD/ DEST/``.
- pull: the modified files into that destination. vsync: the server's branch moved
  to the second commit, ``vsync pull --porcelain`` in the clone, at least RACY_NS
  after the clone ended (:mod:`vsync.model.statcache`). rsync: ``rsync -a
  --no-whole-file --stats 127.0.0.1:NEW/ DEST/``.

rsync runs with ``-c aes128-gcm@openssh.com`` (asyncssh's cipher in vsync) and,
for information, with OpenSSH's default cipher. Time is wall-clock around the
client process; client CPU and peak RSS from ``/usr/bin/time -v`` (rsync's include
its ``ssh``); server CPU from the listening sshd's reaped children
(:func:`push_ssh.server_cpu`). Run through ``bench/run.py --only receive``.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datagen
import machine
from measure import Target, ensure_command, fresh, verdict
from push_ssh import (
    DATA_DIR,
    GCM,
    INSERT,
    MIB,
    RUNS,
    VSYNC,
    Input,
    Sample,
    branch_head,
    default_cipher,
    ensure_modified,
    inputs,
    link,
    load_sshd_helper,
    med,
    name_of,
    rsync_stats,
    run,
    sample_of,
    spread,
    ssh_command,
    version,
    vsync_cipher,
    vsync_env,
)
from report import human, vsync_version, warm, write_section

from vsync.model.statcache import RACY_NS

BENCH_DIR = Path(__file__).resolve().parent
HEADING = "## Clone and pull over SSH (issue 14)"
RSS_TARGET = 150 * MIB


@dataclass
class Row:
    tool: str
    cipher: str
    clone: list[Sample] = field(default_factory=list)
    pull: list[Sample] = field(default_factory=list)


@dataclass
class Server:
    """The bare repository (its two commits) and rsync's two source folders."""

    repo: Path
    first: bytes
    second: bytes
    old_dir: Path
    new_dir: Path

    def set_branch(self, commit: bytes) -> None:
        from dulwich.repo import Repo

        with Repo(str(self.repo / "git")) as git:
            git.refs[b"refs/heads/main"] = commit

    def warm(self) -> None:
        for pack in (self.repo / "chunks").glob("*.vpk"):
            warm(pack)


def make_server(inps: list[Input], scratch: Path, env: dict[str, str]) -> Server:
    """The server side, built once (not timed): commits pushed through a path."""
    src = fresh(scratch / "server-src")
    repo = scratch / "server"
    run([*VSYNC, "init"], env, cwd=src)
    for inp in inps:
        link(inp.path, src, name_of(inp))
    run([*VSYNC, "commit", "-q", "-m", "initial"], env, cwd=src)
    run([*VSYNC, "push", "-q", "--create", str(repo)], env, cwd=src)
    first = branch_head(repo / "git")
    for inp in inps:
        link(inp.modified, src, name_of(inp))
    run([*VSYNC, "commit", "-q", "-m", "insert"], env, cwd=src)
    run([*VSYNC, "push", "-q", str(repo)], env, cwd=src)
    second = branch_head(repo / "git")
    shutil.rmtree(src)
    old_dir, new_dir = fresh(scratch / "rsync-old"), fresh(scratch / "rsync-new")
    for inp in inps:
        link(inp.path, old_dir, name_of(inp))
        link(inp.modified, new_dir, name_of(inp))
    return Server(repo, first, second, old_dir, new_dir)


def same_files(dest: Path, inps: list[Input], modified: bool) -> None:
    for inp in inps:
        want = inp.modified if modified else inp.path
        if not filecmp.cmp(dest / name_of(inp), want, shallow=False):
            raise SystemExit(f"{dest / name_of(inp)} differs from {want}")


def vsync_sample(cmd: list[str], env: dict[str, str], cwd: Path, sshd: Any) -> Sample:
    return sample_of(run(cmd, env, cwd=cwd, sshd=sshd), cmd[3])


def vsync_round(inps: list[Input], row: Row, server: Server, sshd: Any, scratch: Path) -> None:
    env = vsync_env(sshd)
    dest = scratch / "vsync-dest"
    if dest.exists():
        shutil.rmtree(dest)
    remote = ["--remote-cmd", sshd.remote_cmd]
    server.set_branch(server.first)
    server.warm()
    clone = [*VSYNC, "clone", "--porcelain", sshd.url(server.repo), str(dest), *remote]
    row.clone.append(vsync_sample(clone, env, scratch, sshd))
    cloned = time.monotonic()
    same_files(dest, inps, modified=False)
    server.set_branch(server.second)
    server.warm()
    # A file written less than RACY_NS before it is looked at again may have changed
    # unseen within its timestamp's tick: the pull would hash it again (as git does
    # with "racily clean" files). A person pulls later than that after a clone.
    time.sleep(max(0.0, cloned + RACY_NS / 1e9 + 0.1 - time.monotonic()))
    row.pull.append(vsync_sample([*VSYNC, "pull", "--porcelain", *remote], env, dest, sshd))
    same_files(dest, inps, modified=True)
    shutil.rmtree(dest)


def rsync_sample(cmd: list[str], env: dict[str, str], sshd: Any) -> Sample:
    proc = run(cmd, env, sshd=sshd)
    s = rsync_stats(proc.stdout)
    return Sample(
        proc.seconds, s["sent"], s["received"], s["literal"], proc.cpu, proc.server_cpu,
        proc.peak_rss,
    )  # fmt: skip


def rsync_round(
    inps: list[Input], row: Row, server: Server, sshd: Any, scratch: Path, cipher: str | None
) -> None:
    env = sshd.env()
    rsh = ssh_command(sshd, cipher)
    dest = fresh(scratch / "rsync-dest")
    for inp in inps:
        warm(inp.path)
    row.clone.append(
        rsync_sample(
            ["rsync", "-a", "--stats", "-e", rsh, f"127.0.0.1:{server.old_dir}/", f"{dest}/"],
            env,
            sshd,
        )
    )
    same_files(dest, inps, modified=False)
    for inp in inps:
        warm(inp.modified)
    pull = ["rsync", "-a", "--no-whole-file", "--stats", "-e", rsh]
    row.pull.append(rsync_sample([*pull, f"127.0.0.1:{server.new_dir}/", f"{dest}/"], env, sshd))
    same_files(dest, inps, modified=True)
    shutil.rmtree(dest)


def measure(inps: list[Input], sshd: Any, scratch: Path, runs: int) -> list[Row]:
    server = make_server(inps, scratch, vsync_env(sshd))
    rows = [Row("vsync", vsync_cipher()), Row("rsync", GCM), Row("rsync", default_cipher())]
    work = scratch / "runs"
    work.mkdir(exist_ok=True)
    for i in range(runs):  # interleaved: load drifting on the machine touches every tool
        print(f"run {i + 1}/{runs}: vsync", flush=True)
        vsync_round(inps, rows[0], server, sshd, work)
        print(f"run {i + 1}/{runs}: rsync -c {GCM}", flush=True)
        rsync_round(inps, rows[1], server, sshd, work, GCM)
        print(f"run {i + 1}/{runs}: rsync (default cipher)", flush=True)
        rsync_round(inps, rows[2], server, sshd, work, None)
    return rows


# -- the report ---------------------------------------------------------------------


def label(row: Row) -> str:
    return f"{row.tool} ({row.cipher})"


def m(samples: list[Sample], attr: str) -> float:
    return med([getattr(s, attr) for s in samples])


def targets(rows: list[Row]) -> list[Target]:
    vsync, rsync = rows[0], rows[1]
    out = []
    for phase, scen in (("clone", "l. clone over SSH"), ("pull", "l. pull after the 10-byte "
                                                                 "insertion")):  # fmt: skip
        ratio = m(getattr(vsync, phase), "seconds") / m(getattr(rsync, phase), "seconds")
        out.append(
            Target(scen, f"vsync time / {label(rsync)} time", f"{ratio:.2f}", "<= 1",
                   verdict(ratio, 1.0, False))
        )  # fmt: skip
    peak = max(s.peak_rss for s in vsync.clone + vsync.pull)
    out.append(
        Target("l. clone and pull over SSH", "vsync peak RSS", human(peak), "< 150 MiB",
               "met" if peak < RSS_TARGET else f"missed by {peak / RSS_TARGET:.1f}x")
    )  # fmt: skip
    return out


def table(inps: list[Input], rows: list[Row]) -> str:
    out = [
        "| phase | tool (cipher) | time, median (min-max) | file size / time | received "
        "| file data | client CPU | server CPU | client peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in ("clone", "pull"):
        size = sum(i.size for i in inps) + (0 if phase == "clone" else len(INSERT) * len(inps))
        for row in rows:
            samples: list[Sample] = getattr(row, phase)
            out.append(
                f"| {phase} | {label(row)} | {spread(samples)} "
                f"| {size / MIB / m(samples, 'seconds'):.0f} MiB/s "
                f"| {human(m(samples, 'received'))} | {human(m(samples, 'literal'))} "
                f"| {m(samples, 'cpu'):.2f} s | {m(samples, 'server_cpu'):.2f} s "
                f"| {human(max(s.peak_rss for s in samples))} |"
            )
    return "\n".join(out)


def section(
    inps: list[Input], rows: list[Row], tg: list[Target], quick: bool, load: str, runs: int
) -> str:
    files = " and ".join(f"the {human(i.size)} {i.label} file (`{name_of(i)}`)" for i in inps)
    target_rows = "\n".join(
        f"| {t.scenario} | {t.measure} | {t.value} | {t.target} | {t.verdict} |" for t in tg
    )
    v, r = rows[0], rows[1]
    reading = f"""\
    Clone: vsync takes {m(v.clone, "seconds") / m(r.clone, "seconds"):.2f}x the time of
    rsync with the same cipher. With both ends on this {os.cpu_count()}-core machine the
    time follows the CPU both ends burn: vsync {m(v.clone, "cpu"):.1f} s client (asyncssh's
    decryption and per-packet Python, each chunk decompressed and BLAKE3-checked once and
    written to its chunk pack and to its working file as it arrives) and
    {m(v.clone, "server_cpu"):.1f} s server (sshd, `vsync serve` reading packs); rsync
    {m(r.clone, "cpu"):.1f} s client and {m(r.clone, "server_cpu"):.1f} s server. Pull
    ({m(v.pull, "seconds") / m(r.pull, "seconds"):.2f}x rsync's time): vsync receives only
    the new chunks ({human(m(v.pull, "literal"))}), reads the files the clone wrote once
    to hash them (they were written inside the racy-git window, so the stat cache does
    not vouch for them yet) and rebuilds each from the ranges its current copy shares
    (`copy_file_range`); rsync's receiver reads the old files for block checksums and its
    sender rolls a checksum over the new ones."""
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{version("rsync", "--version")}; {version("ssh", "-V")}; vsync {vsync_version()};
{load}.
Command: `.venv/bin/python bench/run.py{" --quick" if quick else ""} --only receive`
(`bench/receive_ssh.py`).

A private OpenSSH sshd listens on 127.0.0.1 (`tests/sshd.py`); client and server
share the machine's {os.cpu_count()} cores. The server holds {files} (`bench/datagen.py`)
as a bare vsync repository with two commits (the files, then the same files each with
10 bytes inserted in the middle) and, for rsync, as two plain folders.

- clone: vsync `vsync clone --porcelain ssh://127.0.0.1:PORT/server DEST --remote-cmd
  "python -m vsync"` (server branch on the first commit); rsync `rsync -a --stats -e
  "ssh -p PORT -i KEY ..." 127.0.0.1:OLD/ DEST/`.
- pull: the server's branch moved to the second commit, `vsync pull --porcelain` in the
  clone, started at least {RACY_NS / 1e9:.0f} s after the clone ended (a file written less
  than that before is "racily clean" and read again, as git does); rsync `rsync -a
  --no-whole-file --stats ... 127.0.0.1:NEW/ DEST/` into the folder its clone made.

rsync runs with `-c {GCM}` (the cipher asyncssh negotiates for vsync) and with
OpenSSH's default cipher (`{rows[2].cipher}`), for information. Each figure is the
median of {runs} runs (min-max in brackets), tools interleaved, the server's files in
the page cache. Time is wall-clock around the client process; "received" is what each
tool counts on its stream; "file data" is vsync's `chunk_bytes` and rsync's "Literal
data"; client CPU and peak RSS from `/usr/bin/time -v` (rsync's include its `ssh`);
server CPU is what the sshd session and the command it ran used.

{table(inps, rows)}

| scenario | measure | value | target | result |
|---|---|---:|---|---|
{target_rows}

{textwrap.fill(" ".join(textwrap.dedent(reading).split()), 88)}
"""


def main(quick: bool, update_docs: bool) -> tuple[str, list[Target]]:
    ensure_command("rsync", "rsync")
    sshd_helper = load_sshd_helper()
    load_start = machine.load()
    inps = inputs(quick)
    for inp in inps:
        print(f"generating {inp.label} ({human(inp.size)}) ...", flush=True)
        datagen.ensure(inp.path, inp.kind, inp.seed, inp.size)
        ensure_modified(inp)
    scratch = Path(tempfile.mkdtemp(prefix="receive-", dir=DATA_DIR))  # same disk: links
    sshd = sshd_helper.start_sshd(scratch / "sshd")
    runs = RUNS
    try:
        rows = measure(inps, sshd, scratch, runs)
    finally:
        sshd.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    tg = targets(rows)
    load = f"{load_start}, {os.getloadavg()[0]:.2f} at the end"
    text = section(inps, rows, tg, quick, load, runs)
    if update_docs:
        write_section(HEADING, text)
    return text, tg
