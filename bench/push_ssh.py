"""Push over SSH to 127.0.0.1: ``vsync push`` against ``rsync -a -e ssh`` (issue 6).

A private OpenSSH ``sshd`` (``tests/sshd.py``) listens on 127.0.0.1 only. The
issue's scenario: one folder holding the 1 GiB incompressible file and the
1 GiB log-text file (64 MiB each with ``--quick``), then the same two files
each with 10 bytes inserted in the middle. Each tool does, median of three
runs into a fresh destination each time:

- initial: both files to an empty destination. vsync: ``vsync push
  --create --porcelain ssh://127.0.0.1:PORT/dest`` from a repository where
  the files are already committed (the commit is not timed). rsync: ``rsync
  -a --stats -e ssh FILES 127.0.0.1:dest/``.
- incremental: the modified files into the destination that holds the old
  ones. vsync: ``vsync commit`` (timed apart, not part of the push time) then
  ``vsync push``; rsync: ``rsync -a --no-whole-file --stats``.
- send a new file (issue 14): a folder holding only the new incompressible
  file, into a fresh destination. vsync: ``vsync sync --porcelain`` from a
  repository that is ``init``ed, the file not committed, its remote ``origin``
  an initialised, empty bare repository (none of that timed): the commit and
  the push together, the commit's chunks sent while it reads (``send-v1``).
  rsync: ``rsync -a --stats -e ssh FOLDER/ 127.0.0.1:dest/``.

rsync runs twice: with OpenSSH's default cipher and with
``-c aes128-gcm@openssh.com``, the cipher vsync's asyncssh client prefers.
Bytes are the application stream each tool reports (vsync's ``wire_sent`` /
``wire_received``, rsync's "Total bytes sent/received"): neither counts SSH's
own packet overhead. Time is wall-clock around the client process; client CPU
and peak RSS come from ``/usr/bin/time -v`` (for rsync they include its
``ssh`` child); server CPU is what the sshd session and the command it ran
used, read from the listening sshd's reaped-children times.

Run through ``bench/run.py`` (``make bench`` / ``make bench-quick``).
"""

from __future__ import annotations

import filecmp
import importlib.util
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import datagen
import machine
from measure import ensure_command, fresh, run_output
from report import human, vsync_version, warm, write_section

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
REPO_ROOT = BENCH_DIR.parent
HEADING = "## Push over SSH (issue 6)"
RUNS = 3
GIB = 1024**3
MIB = 1024**2
INSERT = b"\n10 bytes\n"  # inserted in the middle of the file
GCM = "aes128-gcm@openssh.com"

VSYNC = [sys.executable, "-m", "vsync"]
assert len(INSERT) == 10


# -- inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    label: str
    kind: str
    seed: int
    size: int

    @property
    def path(self) -> Path:
        return DATA_DIR / f"{self.kind}-{self.seed}-{self.size}.dat"

    @property
    def modified(self) -> Path:
        """The same bytes with :data:`INSERT` at ``size // 2`` (a cached copy)."""
        return DATA_DIR / f"{self.kind}-{self.seed}-{self.size}-insert10.dat"


def inputs(quick: bool) -> list[Input]:
    size = 64 * MIB if quick else GIB
    return [Input("incompressible", "random", 1, size), Input("log text", "text", 2, size)]


def name_of(inp: Input) -> str:
    """The file's name in the pushed folder."""
    return f"{inp.kind}.dat"


def ensure_modified(inp: Input) -> Path:
    """Write the modified copy once; the cached original is only read."""
    target = inp.modified
    if target.is_file() and target.stat().st_size == inp.size + len(INSERT):
        return target

    def blocks() -> Iterator[bytes]:
        with open(inp.path, "rb") as f:
            left = inp.size // 2
            while left:
                block = f.read(min(datagen.BLOCK, left))
                left -= len(block)
                yield block
            yield INSERT
            while block := f.read(datagen.BLOCK):
                yield block

    datagen.write(target, blocks())
    return target


# -- peers: rsync and a private sshd ------------------------------------------------


def load_sshd_helper() -> ModuleType:
    """``tests/sshd.py``, imported by path (tests/ is not a package)."""
    name = "vsync_bench_sshd"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "sshd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def ssh_command(sshd: Any, cipher: str | None) -> str:
    """The ``-e`` of rsync: the same key, host key and 127.0.0.1 as vsync uses."""
    home: Path = sshd.home
    parts = [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(sshd.port),
        "-i",
        str(sshd.client_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={home / '.ssh' / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]
    if cipher:
        parts += ["-c", cipher]
    return shlex.join(parts)


def default_cipher() -> str:
    """The cipher OpenSSH negotiates with itself: the first of the client's list."""
    out = subprocess.run(
        ["ssh", "-G", "-F", "/dev/null", "127.0.0.1"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        if line.startswith("ciphers "):
            return line.split()[1].split(",")[0]
    return "OpenSSH default"


def vsync_cipher() -> str:
    from vsync.sync.ssh import PREFERRED_CIPHERS

    return PREFERRED_CIPHERS[0]


# -- running and measuring one command -----------------------------------------------


@dataclass
class Sample:
    seconds: float
    sent: int
    received: int
    literal: int  # vsync: chunk_bytes; rsync: "Literal data"
    cpu: float  # client user + system seconds
    server_cpu: float  # sshd's session process and what it ran, user + system seconds
    peak_rss: int
    pack: int = 0  # vsync: pack_bytes (commits, trees, manifests)
    offered: int = 0  # vsync sync: chunk bytes sent while the commit ran

    @property
    def wire(self) -> int:
        return self.sent + self.received


def sync_sample(proc: Proc, out: dict[str, str]) -> Sample:
    """A ``vsync sync --porcelain`` run as a Sample: the chunks offered while the commit
    read them count as sent and as file data (the offer's frame heads not counted)."""
    offered = int(out["offered_bytes"])
    return Sample(
        proc.seconds,
        int(out["wire_sent"]) + offered,
        int(out["wire_received"]),
        offered + int(out["chunk_bytes"]),
        proc.cpu,
        proc.server_cpu,
        proc.peak_rss,
        int(out["pack_bytes"]),
        offered=offered,
    )


@dataclass
class Proc:
    seconds: float
    stdout: str
    cpu: float
    peak_rss: int
    server_cpu: float = 0.0


def server_cpu(sshd: Any) -> float:
    """CPU seconds of the listening sshd's reaped children (the server side).

    Each connection is served by a child of the listening sshd; when it ends,
    its CPU time and that of everything it ran (``vsync serve``, ``rsync
    --server``) is added to the listener's ``cutime`` + ``cstime``. Waits
    until no connection is left so the last one is counted.
    """
    pid = sshd.proc.pid
    deadline = time.monotonic() + 10
    children = Path(f"/proc/{pid}/task/{pid}/children")
    while children.exists() and children.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None, sshd: Any = None) -> Proc:
    """Run ``cmd`` to completion; wall time measured around the process.

    With ``sshd``, also the server-side CPU the command caused.
    """
    server_before = server_cpu(sshd) if sshd is not None else 0.0
    timed, stdout = run_output(cmd, cwd, env)
    server = server_cpu(sshd) - server_before if sshd is not None else 0.0
    return Proc(timed.seconds, stdout.decode("utf-8", "replace"), timed.cpu, timed.peak_rss, server)


def porcelain(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def rsync_stats(text: str) -> dict[str, int]:
    def num(label: str) -> int:
        m = re.search(rf"^{label}: ([\d,]+)", text, re.MULTILINE)
        if not m:
            raise SystemExit(f"rsync --stats printed no {label!r}:\n{text}")
        return int(m.group(1).replace(",", ""))

    return {
        "sent": num("Total bytes sent"),
        "received": num("Total bytes received"),
        "literal": num("Literal data"),
        "matched": num("Matched data"),
    }


def branch_head(git_dir: Path) -> bytes:
    from dulwich.repo import Repo

    with Repo(str(git_dir)) as git:
        return git.refs[b"refs/heads/main"]


def link(src: Path, folder: Path, name: str) -> Path:
    target = folder / name
    target.unlink(missing_ok=True)
    os.link(src, target)
    return target


# -- the scenarios --------------------------------------------------------------------


@dataclass
class Row:
    tool: str  # "vsync" or "rsync"
    cipher: str
    initial: list[Sample] = field(default_factory=list)
    incremental: list[Sample] = field(default_factory=list)
    commit_seconds: list[float] = field(default_factory=list)  # vsync only
    initial_commit_seconds: list[float] = field(default_factory=list)  # vsync only
    send: list[Sample] = field(default_factory=list)  # a new file: vsync sync / rsync


def vsync_env(sshd: Any) -> dict[str, str]:
    return sshd.env(
        VSYNC_LOOPBACK_ONLY="1",
        VSYNC_AUTHOR_NAME="Bench",
        VSYNC_AUTHOR_EMAIL="bench@example.com",
        VSYNC_HOST="bench",
    )


def vsync_push(url: str, sshd: Any, env: dict[str, str], src: Path, create: bool) -> Sample:
    create_flag = ["--create"] if create else []
    cmd = [*VSYNC, "push", *create_flag, "--porcelain", url, "--remote-cmd", sshd.remote_cmd]
    return sample_of(run(cmd, env, cwd=src, sshd=sshd), "push")


def sample_of(proc: Proc, command: str) -> Sample:
    """The figures of a vsync transfer from its run and its ``--porcelain`` summary
    (it must have moved something)."""
    out = porcelain(proc.stdout)
    if out.get("up_to_date") != "0":
        raise SystemExit(f"vsync {command} moved nothing:\n{proc.stdout}")
    return Sample(
        proc.seconds,
        int(out["wire_sent"]),
        int(out["wire_received"]),
        int(out["chunk_bytes"]),
        proc.cpu,
        proc.server_cpu,
        proc.peak_rss,
        int(out["pack_bytes"]),
    )


def vsync_round(inps: list[Input], row: Row, sshd: Any, scratch: Path) -> None:
    env = vsync_env(sshd)
    src = fresh(scratch / "vsync-src")
    dest = scratch / "vsync-dest"
    if dest.exists():
        shutil.rmtree(dest)
    url = sshd.url(dest)
    run([*VSYNC, "init"], env, cwd=src)
    for inp in inps:
        link(inp.path, src, name_of(inp))
    for inp in inps:
        warm(inp.path)
    first = run([*VSYNC, "commit", "-q", "-m", "initial"], env, cwd=src)
    row.initial_commit_seconds.append(first.seconds)
    for inp in inps:
        warm(inp.path)
    row.initial.append(vsync_push(url, sshd, env, src, create=True))
    for inp in inps:
        link(inp.modified, src, name_of(inp))
        warm(inp.modified)
    row.commit_seconds.append(run([*VSYNC, "commit", "-q", "-m", "insert"], env, cwd=src).seconds)
    row.incremental.append(vsync_push(url, sshd, env, src, create=False))
    head, remote = branch_head(src / ".vsync" / "git"), branch_head(dest / "git")
    if head != remote:
        raise SystemExit(f"vsync push left the remote at {remote!r}, not {head!r}")
    shutil.rmtree(src)
    shutil.rmtree(dest)


def vsync_send_round(inp: Input, row: Row, sshd: Any, scratch: Path) -> None:
    """``vsync sync`` of a folder holding one new file into an empty remote."""
    env = vsync_env(sshd)
    src = fresh(scratch / "send-src")
    dest = scratch / "send-dest"
    if dest.exists():
        shutil.rmtree(dest)
    run([*VSYNC, "init", "--bare", str(dest)], env)
    run([*VSYNC, "init"], env, cwd=src)
    run([*VSYNC, "remote", "add", "origin", sshd.url(dest)], env, cwd=src)
    link(inp.path, src, name_of(inp))
    warm(inp.path)
    cmd = [*VSYNC, "sync", "--porcelain", "--remote-cmd", sshd.remote_cmd]
    proc = run(cmd, env, cwd=src, sshd=sshd)
    out = porcelain(proc.stdout)
    if out.get("pushed") != "1":
        raise SystemExit(f"vsync sync pushed nothing:\n{proc.stdout}")
    head, remote = branch_head(src / ".vsync" / "git"), branch_head(dest / "git")
    if head != remote:
        raise SystemExit(f"vsync sync left the remote at {remote!r}, not {head!r}")
    row.send.append(sync_sample(proc, out))
    shutil.rmtree(src)
    shutil.rmtree(dest)


def rsync_send_round(inp: Input, row: Row, sshd: Any, scratch: Path, cipher: str | None) -> None:
    env = sshd.env()
    src = fresh(scratch / "rsync-send-src")
    link(inp.path, src, name_of(inp))
    dest = fresh(scratch / "rsync-send-dest")
    warm(inp.path)
    rsh = ssh_command(sshd, cipher)
    row.send.append(
        rsync_sample(
            ["rsync", "-a", "--stats", "-e", rsh, f"{src}/", f"127.0.0.1:{dest}/"], env, sshd
        )
    )
    if not filecmp.cmp(dest / name_of(inp), inp.path, shallow=False):
        raise SystemExit("rsync left a destination file that differs from its source")
    shutil.rmtree(src)
    shutil.rmtree(dest)


def rsync_sample(cmd: list[str], env: dict[str, str], sshd: Any) -> Sample:
    proc = run(cmd, env, sshd=sshd)
    s = rsync_stats(proc.stdout)
    return Sample(
        proc.seconds,
        s["sent"],
        s["received"],
        s["literal"],
        proc.cpu,
        proc.server_cpu,
        proc.peak_rss,
    )


def rsync_round(inps: list[Input], row: Row, sshd: Any, scratch: Path, cipher: str | None) -> None:
    env = sshd.env()
    rsh = ssh_command(sshd, cipher)
    old_dir = fresh(scratch / "rsync-old")
    new_dir = fresh(scratch / "rsync-new")
    for inp in inps:
        link(inp.path, old_dir, name_of(inp))
        link(inp.modified, new_dir, name_of(inp))
    dest = fresh(scratch / "rsync-dest")
    remote = f"127.0.0.1:{dest}/"
    old = [str(old_dir / name_of(inp)) for inp in inps]
    new = [str(new_dir / name_of(inp)) for inp in inps]
    for inp in inps:
        warm(inp.path)
    row.initial.append(rsync_sample(["rsync", "-a", "--stats", "-e", rsh, *old, remote], env, sshd))
    for inp in inps:
        warm(inp.modified)
    row.incremental.append(
        rsync_sample(
            ["rsync", "-a", "--no-whole-file", "--stats", "-e", rsh, *new, remote], env, sshd
        )
    )
    for inp in inps:
        if not filecmp.cmp(dest / name_of(inp), inp.modified, shallow=False):
            raise SystemExit("rsync left a destination file that differs from its source")
    for folder in (old_dir, new_dir, dest):
        shutil.rmtree(folder)


def measure(inps: list[Input], sshd: Any, scratch: Path) -> list[Row]:
    rows = [
        Row("vsync", vsync_cipher()),
        Row("rsync", default_cipher()),
        Row("rsync", GCM),
    ]
    # Interleaved so that load drifting on the machine touches every tool alike.
    for i in range(RUNS):
        print(f"run {i + 1}/{RUNS}: vsync", flush=True)
        vsync_round(inps, rows[0], sshd, scratch)
        print(f"run {i + 1}/{RUNS}: rsync", flush=True)
        rsync_round(inps, rows[1], sshd, scratch, None)
        print(f"run {i + 1}/{RUNS}: rsync -c {GCM}", flush=True)
        rsync_round(inps, rows[2], sshd, scratch, GCM)
        new_file = inps[0]  # the incompressible one
        print(f"run {i + 1}/{RUNS}: send a new file: vsync sync", flush=True)
        vsync_send_round(new_file, rows[0], sshd, scratch)
        print(f"run {i + 1}/{RUNS}: send a new file: rsync", flush=True)
        rsync_send_round(new_file, rows[1], sshd, scratch, None)
        print(f"run {i + 1}/{RUNS}: send a new file: rsync -c {GCM}", flush=True)
        rsync_send_round(new_file, rows[2], sshd, scratch, GCM)
    return rows


# -- the report ---------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def label(row: Row) -> str:
    return f"{row.tool} ({row.cipher})"


def spread(samples: list[Sample]) -> str:
    secs = [s.seconds for s in samples]
    return f"{med(secs):.2f} s ({min(secs):.2f}-{max(secs):.2f})"


def table(inps: list[Input], rows: list[Row]) -> str:
    out = [
        "| phase | tool (cipher) | time, median (min-max) | file size / time | sent | received "
        "| sent + received | file data sent | client CPU | server CPU | client peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in ("initial", "incremental"):
        size = sum(i.size for i in inps) + (0 if phase == "initial" else len(INSERT) * len(inps))
        for row in rows:
            samples: list[Sample] = getattr(row, phase)
            secs = med([s.seconds for s in samples])
            out.append(
                f"| {phase} | {label(row)} | {spread(samples)} "
                f"| {size / MIB / secs:.0f} MiB/s "
                f"| {human(med([s.sent for s in samples]))} "
                f"| {human(med([s.received for s in samples]))} "
                f"| {human(med([s.wire for s in samples]))} "
                f"| {human(med([s.literal for s in samples]))} "
                f"| {med([s.cpu for s in samples]):.2f} s "
                f"| {med([s.server_cpu for s in samples]):.2f} s "
                f"| {human(med([s.peak_rss for s in samples]))} |"
            )
    out += [
        "",
        "| phase | vsync against | time vsync / rsync | bytes vsync / rsync | target | met |",
        "|---|---|---:|---:|---|---|",
    ]
    vsync = rows[0]
    for phase, target in (
        ("initial", "time <= 1 (at least rsync's throughput)"),
        ("incremental", "bytes <= 1.5 and time <= 1"),
    ):
        v: list[Sample] = getattr(vsync, phase)
        for row in rows[1:]:
            r: list[Sample] = getattr(row, phase)
            t = med([s.seconds for s in v]) / med([s.seconds for s in r])
            b = med([s.wire for s in v]) / med([s.wire for s in r])
            ok = t <= 1 and (phase == "initial" or b <= 1.5)
            out.append(
                f"| {phase} | {label(row)} | {t:.2f} | {b:.2f} | {target} "
                f"| {'yes' if ok else 'no'} |"
            )
    for phase, commits in (
        ("initial", vsync.initial_commit_seconds),
        ("incremental", vsync.commit_seconds),
    ):
        v = getattr(vsync, phase)
        with_commit = med([s.seconds for s in v]) + med(commits)
        for row in rows[1:]:
            r = getattr(row, phase)
            t = with_commit / med([s.seconds for s in r])
            out.append(
                f"| {phase}, vsync commit + push | {label(row)} | {t:.2f} | - "
                f"| - (for information) | - |"
            )
    return "\n".join(out)


SEND_TARGET = 1.1  # issue 14: vsync sync time / rsync (aes128-gcm) time


def send_table(inp: Input, rows: list[Row]) -> str:
    """The "send a new file" scenario: vsync sync (commit and push) against rsync."""
    out = [
        "| tool (cipher) | time, median (min-max) | file size / time | file data sent "
        "| of it during the commit | client CPU | server CPU | client peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        samples = row.send
        secs = med([s.seconds for s in samples])
        during = human(med([s.offered for s in samples])) if row.tool == "vsync" else "-"
        out.append(
            f"| {'vsync sync' if row.tool == 'vsync' else 'rsync'} ({row.cipher}) "
            f"| {spread(samples)} | {inp.size / MIB / secs:.0f} MiB/s "
            f"| {human(med([s.literal for s in samples]))} | {during} "
            f"| {med([s.cpu for s in samples]):.2f} s "
            f"| {med([s.server_cpu for s in samples]):.2f} s "
            f"| {human(med([s.peak_rss for s in samples]))} |"
        )
    ratio = send_ratio(rows)
    out += [
        "",
        "| scenario | measure | value | target | met |",
        "|---|---|---:|---|---|",
        f"| send a new file | vsync sync time / rsync ({GCM}) time | {ratio:.2f} "
        f"| <= {SEND_TARGET} | {'yes' if ratio <= SEND_TARGET else 'no'} |",
    ]
    return "\n".join(out)


def send_ratio(rows: list[Row]) -> float:
    gcm = next(row for row in rows if row.tool == "rsync" and row.cipher == GCM)
    return med([s.seconds for s in rows[0].send]) / med([s.seconds for s in gcm.send])


def section(
    results: list[tuple[list[Input], list[Row]]], quick: bool, load_start: str, load_end: str
) -> str:
    inps, rows = results[0]
    commit = med(rows[0].commit_seconds)
    first = med(rows[0].initial_commit_seconds)
    files = " and ".join(f"the {human(i.size)} {i.label} file (`{name_of(i)}`)" for i in inps)
    total = human(sum(i.size for i in inps))
    tables = "\n\n".join(f"Both files, {total}:\n\n{table(i, r)}" for i, r in results)
    tables += "".join(
        f"\n\nSend a new file: `vsync sync` of a folder holding only the {human(i[0].size)} "
        f"{i[0].label} file (`{name_of(i[0])}`), not yet committed, into an empty "
        f"remote:\n\n{send_table(i[0], r)}"
        for i, r in results
    )
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{version("rsync", "--version")}; {version("ssh", "-V")}; vsync {vsync_version()};
{load_start}, {load_end}.
Command: `make bench{"-quick" if quick else ""}` (`bench/push_ssh.py`), or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only push` for this section alone.

A private OpenSSH sshd listens on 127.0.0.1 (`tests/sshd.py`); client and server
run on the same machine and share its {os.cpu_count()} cores. One folder holds
{files}, both from `bench/datagen.py`. Initial: both files to an empty destination.
Incremental: the same files, each with 10 bytes inserted in the middle, into the
destination that holds the old versions.

- vsync: `vsync push --create --porcelain ssh://127.0.0.1:PORT/DEST --remote-cmd
  "python -m vsync"` from a repository where the files are already committed. The
  commit that reads, chunks and stores both files is timed apart (median
  {first:.2f} s), not in the push time; for the incremental push the modified files are
  committed first in the same way (median {commit:.2f} s). The rows "vsync commit +
  push" add the commit's median to the push's. asyncssh negotiates `{rows[0].cipher}`.
- rsync: `rsync -a --stats -e "ssh -p PORT -i KEY ..." FILES 127.0.0.1:DEST/`, the
  incremental one with `--no-whole-file`; once with OpenSSH's default cipher
  (`{rows[1].cipher}`) and once with `-c {GCM}`, vsync's cipher.
- Send a new file (issue 14): `vsync sync --porcelain` in a repository that was
  `init`ed, holding the new file uncommitted, whose remote `origin` is an initialised,
  empty bare repository over SSH (setting that up is not timed): the commit and the
  push together, in one session, the commit's new chunks sent while it reads them.
  rsync: `rsync -a --stats -e "ssh ..." FOLDER/ 127.0.0.1:DEST/` into an empty folder.

Each figure is the median of {RUNS} runs into a fresh destination (min-max in
brackets); the runs of the tools are interleaved and the file is in the page cache
before each run. Time is wall-clock around the client process. Bytes are what each
tool counts on its own stream (vsync's `wire_sent` / `wire_received`, rsync's "Total
bytes sent/received"), without SSH's packet overhead; "file data sent" is vsync's
`chunk_bytes` and rsync's "Literal data". Client CPU and peak RSS are the client
process's (`/usr/bin/time -v`; rsync's include its `ssh` child); server CPU is what
the sshd session and the command it ran (`vsync serve`, `rsync --server`) used.

{tables}

{reading(rows)}
"""


def reading(rows: list[Row]) -> str:
    """The paragraph under the tables: where the time and the bytes go."""
    vsync, rsync, gcm = rows[0], rows[1], rows[2]

    def m(samples: list[Sample], attr: str) -> float:
        return med([getattr(s, attr) for s in samples])

    vi, ri, vn, rn = vsync.initial, rsync.initial, vsync.incremental, rsync.incremental
    gi = gcm.initial
    v_cpu = m(vi, "cpu") + m(vi, "server_cpu")
    r_cpu = m(ri, "cpu") + m(ri, "server_cpu")
    with_commit = m(vi, "seconds") + med(vsync.initial_commit_seconds)
    initial = f"""\
How to read it. Initial push: vsync takes {m(vi, "seconds") / m(ri, "seconds"):.2f}x the
time of rsync with OpenSSH's default cipher (`{rsync.cipher}`) and
{m(vi, "seconds") / m(gi, "seconds"):.2f}x the time of rsync with vsync's own cipher
(`{gcm.cipher}`); with the commit that chunked the data, {with_commit / m(ri, "seconds"):.2f}x
and {with_commit / m(gi, "seconds"):.2f}x. It moves {m(vi, "wire") / m(ri, "wire"):.2f}x
rsync's bytes: the text file's chunks travel as stored, zstd-compressed, and are never
recompressed. With both ends on this {os.cpu_count()}-core machine the time follows the
CPU both ends burn: vsync {v_cpu:.1f} s ({m(vi, "cpu"):.1f} s client: reading chunks,
asyncssh's per-packet Python and AES-GCM; {m(vi, "server_cpu"):.1f} s server: sshd, and
`vsync serve` decompressing and BLAKE3-checking every chunk on a worker thread
while it reads the next batch, then writing and sealing packs), rsync {r_cpu:.1f} s.
"""
    incremental = f"""\
Incremental push ({m(vn, "seconds") / m(rn, "seconds"):.2f}x rsync's time): vsync reads
nothing but the new chunks (finding them was `vsync commit`'s work,
{med(vsync.commit_seconds):.1f} s, not counted here), while rsync's receiver reads both
old files for block checksums, its sender rolls a checksum over both new files and the
receiver writes complete new copies ({m(rn, "server_cpu"):.1f} s of server CPU). vsync's
bytes are {m(vn, "wire") / m(rn, "wire"):.2f}x rsync's: {human(m(vn, "pack"))} of git pack
(the commit, its tree and the two changed manifests, each sent as a git delta against
the receiver's version of the same path: a thin pack) and {human(m(vn, "literal"))} of new
chunks; rsync's {human(m(rn, "received"))} received are mostly the block checksums of the
old files.
"""
    return "\n\n".join(textwrap.fill(" ".join(t.split()), 88) for t in (initial, incremental))


def version(*cmd: str) -> str:
    """A tool's version line (``ssh -V`` prints on stderr), spaces squeezed."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return f"{cmd[0]} not found"
    text = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return " ".join(text[0].split()) if text else f"{cmd[0]} unknown"


def main(quick: bool, update_docs: bool) -> list[tuple[list[Input], list[Row]]]:
    ensure_command("rsync", "rsync")
    sshd_helper = load_sshd_helper()
    load_start = machine.load()
    for inp in inputs(quick):
        print(f"generating {inp.label} ({human(inp.size)}) ...", flush=True)
        datagen.ensure(inp.path, inp.kind, inp.seed, inp.size)
        ensure_modified(inp)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="push-", dir=DATA_DIR))  # same disk: hard links
    sshd = sshd_helper.start_sshd(scratch / "sshd")
    results: list[tuple[list[Input], list[Row]]] = []
    try:
        inps = inputs(quick)
        results.append((inps, measure(inps, sshd, scratch / "runs")))
    finally:
        sshd.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = f"{os.getloadavg()[0]:.2f} at the end"
    text = section(results, quick, load_start, load_end)
    out = BENCH_DIR / "results"
    out.mkdir(exist_ok=True)
    (out / f"push_ssh{'-quick' if quick else ''}.md").write_text(text, encoding="utf-8")
    if update_docs:
        write_section(HEADING, text)
    print(text)
    return results
