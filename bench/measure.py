"""Running the tools and summarising what they cost: the shared half of the scenarios.

Every command runs under ``/usr/bin/time -v`` (when present) so each run has
its wall-clock time (measured around the process), its CPU time (user +
system, children included) and its peak resident set. A :class:`Series`
holds the runs of one tool in one scenario and formats "median (min-max)".
:func:`verdict` turns a measured ratio and its target into "met" or
"missed by 1.6x".
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from report import human

TIME = "/usr/bin/time"
VSYNC = [sys.executable, "-m", "vsync"]
RESTIC_PASSWORD = "vsync-bench"
MIB = 1024**2
GIB = 1024**3


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for git, vsync and restic: no user config, fixed identities."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        VSYNC_AUTHOR_NAME="Bench",
        VSYNC_AUTHOR_EMAIL="bench@example.com",
        VSYNC_HOST="bench",
        RESTIC_PASSWORD=RESTIC_PASSWORD,
    )
    env.pop("VSYNC_DEBUG", None)
    # An installed vsync has its bytecode compiled; never time Python compiling it again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


@dataclass
class Run:
    """One command (or a sequence of them, summed)."""

    seconds: float
    cpu: float  # user + system, seconds
    peak_rss: int  # bytes, the largest of the sequence

    def __add__(self, other: Run) -> Run:
        return Run(
            self.seconds + other.seconds, self.cpu + other.cpu, max(self.peak_rss, other.peak_rss)
        )


ZERO = Run(0.0, 0.0, 0)


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> Run:
    """Run ``cmd`` to completion under ``/usr/bin/time -v``; exit on failure."""
    return run_output(cmd, cwd, env)[0]


def run_output(cmd: Sequence[str], cwd: Path | None, env: dict[str, str]) -> tuple[Run, bytes]:
    """:func:`run`, also returning what the command printed on stdout."""
    have_time = os.access(TIME, os.X_OK)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        full = [TIME, "-v", "-o", report.name, *cmd] if have_time else list(cmd)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, check=False)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(
                f"benchmark command failed ({proc.returncode}): {shlex.join(cmd)} in {cwd}\n"
                f"{proc.stderr.decode('utf-8', 'replace')}"
            )
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss = after.ru_maxrss * 1024
        if have_time:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read())
            if m:
                rss = int(m.group(1)) * 1024
    return Run(seconds, cpu, rss), proc.stdout


def run_all(cmds: Sequence[Sequence[str]], cwd: Path, env: dict[str, str]) -> Run:
    total = ZERO
    for cmd in cmds:
        total = total + run(cmd, cwd, env)
    return total


@dataclass
class Series:
    """The runs of one tool in one scenario."""

    tool: str
    runs: list[Run] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)  # bytes, one per run

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def peak_rss(self) -> int:
        return max(r.peak_rss for r in self.runs)

    @property
    def bytes_stored(self) -> int:
        return int(statistics.median(self.stored)) if self.stored else 0

    def time_cell(self) -> str:
        secs = [r.seconds for r in self.runs]
        if len(secs) == 1:
            return f"{secs[0]:.2f} s"
        return f"{self.seconds:.2f} s ({min(secs):.2f}-{max(secs):.2f})"

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "seconds": [r.seconds for r in self.runs],
            "cpu": [r.cpu for r in self.runs],
            "peak_rss": [r.peak_rss for r in self.runs],
            "stored": self.stored,
        }


@dataclass
class Target:
    """One line of the summary: a scenario's measured figure against its target."""

    scenario: str
    measure: str
    value: str
    target: str
    verdict: str


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    """ "met", or "missed by F x" where F is the factor still to gain."""
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    if value <= 0 or target <= 0:
        return "missed"
    factor = target / value if higher_is_better else value / target
    return f"missed by {factor:.4f}x" if factor < 1.01 else f"missed by {factor:.2f}x"


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def tool_versions() -> str:
    import machine

    return "; ".join(
        (
            machine.tool_version("git", "--version"),
            machine.tool_version("restic", "version").split(" compiled")[0],
        )
    )


def row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def mib_s(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:.0f} MiB/s" if seconds > 0 else "-"


def size_cell(n: int) -> str:
    return human(n)


def ensure_command(command: str, package: str) -> str:
    """``command``'s path; installs the Debian ``package`` only when it is missing."""
    found = shutil.which(command)
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing system package: {package}", flush=True)
    apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    subprocess.run([*apt, "update", "-qq"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(
        [*apt, "install", "-y", "-qq", "--no-install-recommends", package],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    found = shutil.which(command)
    if not found:
        raise SystemExit(f"{command} is still missing after apt-get install {package}")
    return found
