"""Going back a version of a large file after a 10-byte edit (issue 14, "Go back").

On each file system measured (the one bench/data/ is on, ext4 here, and a
loop-mounted XFS image the benchmark makes when ``mkfs.xfs`` and loop mounts
work, else btrfs): a folder holds the 1 GiB incompressible file (64 MiB with
``--quick``), committed; 10 bytes in its middle are overwritten in place and
committed again. Then, rounds of:

- ``cp --reflink=never data.bin copy.bin`` (a plain copy of the file), and the
  same over an existing copy (as one puts a backup copy back over a file: the
  old blocks are freed inside the timed step, as they are for vsync, whose
  rename drops the old version); on a reflink file system ``cp``'s default,
  which shares the blocks instead, is shown beside them for information;
- ``vsync checkout HEAD~1`` (the edited file goes back to the first version);
- ``vsync restore data.bin --source HEAD`` (and forward again);
- ``restic restore latest --target DIR`` of a snapshot of the first version.

Before each vsync step the stat cache is made to know the file as it would after
any ``status`` or commit made two seconds or more after the file was last
written (the racy-git window; untimed ``vsync status``), and before every timed
step ``sync`` writes dirty pages out, so that no tool pays for another's
writeback. Every result is checked against the version's BLAKE3 hash. Peak RSS
from ``/usr/bin/time -v``.

Run through ``bench/run.py`` (``--only goback``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import machine
from commit_throughput import Input, restic_repo
from measure import (
    GIB,
    MIB,
    VSYNC,
    Series,
    Target,
    fresh,
    row,
    run,
    tool_env,
    tool_versions,
    verdict,
)
from report import human, vsync_version

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
HEADING = "## Going back a version of a large file (issue 14)"
RUNS = 3
EDIT = b"0123456789"
RACY_WAIT = 2.2  # seconds: the stat cache's longest racy window (2 s) and a margin
RSS_LIMIT = 150 * MIB
STEPS = ("checkout", "restore", "cp", "cp-over", "cp-auto", "restic")
LABEL = {
    "checkout": "`vsync checkout HEAD~1`",
    "restore": "`vsync restore data.bin --source HEAD`",
    "cp": "`cp --reflink=never` of the file (plain cp)",
    "cp-over": "the same over an existing copy",
    "cp-auto": "`cp` of the file (reflink=auto: shares blocks)",
    "restic": "`restic restore` of the first version",
}


@dataclass
class Place:
    """One file system the scenario runs on."""

    name: str  # "ext4 (bench/data)", "xfs (loop image)"
    root: Path
    reflink: bool
    series: dict[str, Series] = field(default_factory=dict)


def fs_type(path: Path) -> str:
    """The type of the file system ``path`` is on ("ext4")."""
    for cmd in (["findmnt", "-n", "-o", "FSTYPE", "-T"], ["stat", "-f", "-c", "%T"]):
        with contextlib.suppress(OSError):
            out = subprocess.run([*cmd, str(path)], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    return "unknown"


def _hash(path: Path) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def _sync() -> None:
    os.sync()


def _settle(work: Path, env: dict[str, str]) -> None:
    """Let the racy window pass since the file was last written, then let a status
    hash it (untimed), as any status or commit made later would."""
    st = os.stat(work / "data.bin")
    wait = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 + RACY_WAIT - time.time()
    if wait > 0:
        time.sleep(wait)
    run([*VSYNC, "status", "--porcelain"], work, env)
    _sync()


def _program(name: str) -> str | None:
    """``name``'s path, looking in the sbin folders too (not on every PATH)."""
    for folder in ("/usr/sbin", "/sbin"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return shutil.which(name) or f"{folder}/{name}"
    return shutil.which(name)


@contextlib.contextmanager
def reflink_fs(size: int) -> Iterator[tuple[Path, str] | str]:
    """A loop-mounted XFS (else btrfs) image under bench/data/: yields (mount point,
    kind), or a string saying why there is none here."""
    image = DATA_DIR / "goback-reflink.img"
    mnt = DATA_DIR / "goback-reflink-mnt"
    subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
    image.unlink(missing_ok=True)
    tries = [
        ("xfs", ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"]),
        ("btrfs", ["mkfs.btrfs", "-q", "-f"]),
    ]
    why = []
    mounted = ""
    for kind, mkfs in tries:
        found = _program(mkfs[0])
        if found is None:
            why.append(f"{mkfs[0]} not installed")
            continue
        mkfs = [found, *mkfs[1:]]
        with open(image, "wb") as f:
            f.truncate(size)
        mnt.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([*mkfs, str(image)], capture_output=True, text=True)
        if made.returncode != 0:
            why.append(f"{mkfs[0]} failed: {made.stderr.strip()[:80]}")
            continue
        mount = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)],
                               capture_output=True, text=True)  # fmt: skip
        if mount.returncode != 0:
            why.append(f"loop mount of {kind} failed: {mount.stderr.strip()[:80]}")
            continue
        mounted = kind
        break
    try:
        yield (mnt, mounted) if mounted else "; ".join(why)
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def measure_place(place: Place, source: Path, runs: int) -> None:
    env = tool_env()
    root = place.root
    work = fresh(root / "work")
    copy = root / "copy.bin"
    out = root / "restic-out"
    data = work / "data.bin"
    print(f"  {place.name}: setting up", flush=True)
    subprocess.run(["cp", "--reflink=never", str(source), str(data)], check=True)
    one = _hash(data)
    run([*VSYNC, "init"], work, env)
    run([*VSYNC, "commit", "-q", "-m", "one"], work, env)
    base = restic_repo(root / "restic-repo", root / "restic-cache", env)
    run([*base, "backup", "--host", "bench", "--exclude", ".vsync", str(work)], work, env)
    with open(data, "r+b") as f:
        f.seek(data.stat().st_size // 2)
        f.write(EDIT)
    two = _hash(data)
    run([*VSYNC, "commit", "-q", "-m", "two"], work, env)
    place.series = {step: Series(step) for step in STEPS}
    for i in range(runs):
        print(f"  {place.name}: round {i + 1}/{runs}", flush=True)
        for step, flag in (("cp", "--reflink=never"), ("cp-over", "--reflink=never"),
                           ("cp-auto", "--reflink=auto")):  # fmt: skip
            if step == "cp-auto" and not place.reflink:
                continue
            if step == "cp-over":
                subprocess.run(["cp", "--reflink=never", str(data), str(copy)], check=True)
            _sync()
            cmd = ["cp", flag, str(data), str(copy)]
            place.series[step].runs.append(run(cmd, root, env))
            copy.unlink()
        _settle(work, env)
        place.series["checkout"].runs.append(run([*VSYNC, "checkout", "HEAD~1"], work, env))
        if _hash(data) != one:
            raise SystemExit(f"{place.name}: vsync checkout HEAD~1 wrote the wrong content")
        _settle(work, env)
        restore = [*VSYNC, "restore", "data.bin", "--source", "HEAD"]
        place.series["restore"].runs.append(run(restore, work, env))
        if _hash(data) != two:
            raise SystemExit(f"{place.name}: vsync restore wrote the wrong content")
        _sync()
        fresh(out)
        place.series["restic"].runs.append(run([*base, "restore", "latest", "--target", str(out)],
                                               root, env))  # fmt: skip
        restored = list(out.rglob("data.bin"))
        if len(restored) != 1 or _hash(restored[0]) != one:
            raise SystemExit(f"{place.name}: restic restore wrote the wrong content")
        shutil.rmtree(out)


def targets(places: list[Place], size: int) -> list[Target]:
    scen = f"k. go back a version of a {human(size)} file after a 10-byte edit"
    out: list[Target] = []
    for p in places:
        s = p.series
        cp = s["cp"].seconds
        for step in ("checkout", "restore"):
            ratio = s[step].seconds / cp
            limit, shown = (0.1, "< 0.1") if p.reflink else (2.0, "<= 2")
            out.append(Target(scen, f"{p.name}: vsync {step} time / plain cp time",
                              f"{ratio:.2f}", shown, verdict(ratio, limit, False)))  # fmt: skip
    rss = max((p.series[st].peak_rss for p in places for st in ("checkout", "restore")), default=0)
    out.append(Target(scen, "vsync peak RSS, MiB", f"{rss / MIB:.0f}", "< 150",
                      verdict(rss / MIB, 150, False)))  # fmt: skip
    return out


def section(places: list[Place], skipped: str, size: int, runs: int, tg: list[Target],
            quick: bool, load: str) -> str:  # fmt: skip
    rows = [row("file system", "step", f"time, median of {runs} (min-max)", "CPU (user+sys)",
                "peak RSS", "/ plain cp"),
            "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for p in places:
        cp = p.series["cp"].seconds
        for step in STEPS:
            x = p.series[step]
            if not x.runs:
                continue
            rows.append(row(p.name, LABEL[step], x.time_cell(), f"{x.cpu:.2f} s",
                            human(x.peak_rss), f"{x.seconds / cp:.2f}"))  # fmt: skip
    rows += ["", row("measure", "value", "target", "result"), "|---|---:|---|---|"]
    rows += [row(t.measure, t.value, t.target, t.verdict) for t in tg]
    note = f"\nNo reflink file system was measured: {skipped}.\n" if skipped else ""
    return f"""{HEADING}

Measured {machine.today()} on {machine.describe()};
{tool_versions()}; {machine.tool_version("cp", "--version")}; vsync {vsync_version()}; {load}.
Command: `make bench{"-quick" if quick else ""}`, or
`.venv/bin/python bench/run.py{" --quick" if quick else ""} --only goback` (`bench/goback.py`).

A folder holds one {human(size)} incompressible file, committed; 10 bytes in its middle
are overwritten in place and committed again. Then each round times a plain copy of the
file (`cp --reflink=never` to a new file, the target's peer; and over an existing copy,
as one puts a backup copy back, where the old blocks are freed inside the timed step as
they are for vsync's rename), `vsync checkout HEAD~1` (the file goes back to the first
version), `vsync restore data.bin --source HEAD` (and forward again) and `restic restore`
of a snapshot of the first version into an empty folder. vsync rebuilds the file from the
ranges the folder's copy shares with the version it writes (copied in the kernel with
`copy_file_range`, or shared with a reflink clone where the file system has them and the
ranges are block-aligned) plus the changed chunks from its store, then renames it over
the old one; on a file system without clones the new file's blocks are allocated up
front (`fallocate`), so that ext4 does not write the whole file back inside the rename.
What is left on ext4 is the kernel's copy of the unchanged bytes (what `cp` does), the
freeing of the old version's blocks when the rename drops it (what the copy over an
existing copy pays too) and the start of a Python process; on a reflink file system, the
start of the process and dropping the old file's cached pages, whatever the file's size.
The stat cache must know the folder's copy for that: before each vsync step
the benchmark waits until the file was last written more than 2 s ago (the longest racy window)
and runs an untimed `vsync status`, as any status or commit made later would. `sync`
runs before every timed step. Each result is checked against the version's BLAKE3
hash. The file systems: the one `bench/data/` is on, and a loop-mounted image made by
the benchmark (XFS with reflink, else btrfs) where `mkfs` and loop mounts work. On a
reflink file system `cp` shares the file's blocks by default; that row is for
information, the ratios are against the plain copy.
{note}
{chr(10).join(rows)}
"""


def main(quick: bool) -> tuple[str, list[Target]]:
    load = machine.load()
    size = 64 * MIB if quick else GIB
    runs = 1 if quick else RUNS
    inp = Input("incompressible", "random", 1, size)
    source = inp.ensure()
    print("go back: checkout / restore of a large file after a 10-byte edit", flush=True)
    places: list[Place] = []
    scratch = fresh(DATA_DIR / "runs-goback")
    try:
        here = Place(f"{fs_type(DATA_DIR)} (bench/data)", scratch, False)
        measure_place(here, source, runs)
        places.append(here)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    skipped = ""
    with reflink_fs(max(6 * size + 512 * MIB, 2 * GIB)) as fs:
        if isinstance(fs, str):
            skipped = fs
            print(f"  no reflink file system: {fs}", flush=True)
        else:
            mnt, kind = fs
            there = Place(f"{kind} (loop image, reflink)", mnt, True)
            measure_place(there, source, runs)
            places.append(there)
    tg = targets(places, size)
    text = section(
        places, skipped, size, runs, tg, quick, f"{load}, {machine.load_now()} at the end"
    )
    return text, tg
