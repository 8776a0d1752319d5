"""A one-line description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ram_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return 0.0


def tool_version(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "not found"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def describe() -> str:
    cores = os.cpu_count() or 0
    return (
        f"{cpu_model()}, {cores} cores, {ram_gib():.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def load() -> str:
    """The 1-minute load average: other work on the machine skews timings."""
    try:
        return f"load average {os.getloadavg()[0]:.2f} at start"
    except OSError:
        return "load average unknown"


def load_now() -> str:
    """The 1-minute load average now, as a bare number."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def today() -> str:
    return time.strftime("%Y-%m-%d")
