"""What the benchmarks share: sizes for humans, warm reads, vsync's version, and
replacing one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
VSYNC = [sys.executable, "-m", "vsync"]
READ_BLOCK = 8 * 1024 * 1024


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def warm(*paths: Path) -> None:
    """Read files once so every tool starts with them in the page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(READ_BLOCK):
                pass


def vsync_version() -> str:
    out = subprocess.run([*VSYNC, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().removeprefix("vsync ") or "unknown"


def write_section(heading: str, text: str, doc: Path = DOC) -> None:
    """Replace (or append) the section under ``heading`` of docs/benchmarks.md."""
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(heading))
        tail = "" if nxt < 0 else old[nxt:]
        new = old[:start] + text.rstrip("\n") + "\n" + tail
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, doc)
