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
RUN_PREFIX = "Run: "
# The line every section written by this run carries under its heading (set once by
# bench/run.py: which command, at which commit, when), so that a section rewritten by
# a later ``--only`` run says so and is never taken for part of the summary's run.
RUN_LINE: str | None = None


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


# The order of the sections in docs/benchmarks.md; other sections keep their place
# after these, and LAST (written by hand) stays at the end.
SUMMARY = "## Summary"
ORDER = [
    SUMMARY,
    "## Commit throughput (issue 2)",
    "## Commit after a 10-byte insertion (issue 6)",
    "## Commit 50,000 small files (issue 6)",
    "## No-op status on 50,000 files (issue 6)",
    "## Peak memory committing a 4 GiB file (issue 6)",
    "## Status, commit and memory at scale (issue 13)",
    "## Push over SSH",
    "## Going back a version of a large file (issue 14)",
    "## Clone and pull over SSH (issue 14)",
    "## Push to S3 (issue 16)",
    "## Edit-to-other-copy latency",
    "## Encrypted remotes",
    "## A mixed folder (issue 17)",
]
LAST = "## What each change bought"


def with_run_line(text: str, run_line: str | None = None) -> str:
    """``text`` (a section, its heading first) with the run's line under the heading.

    ``run_line`` defaults to :data:`RUN_LINE`; with neither, ``text`` is returned as
    it is. A run line the text already has is replaced.
    """
    line = run_line if run_line is not None else RUN_LINE
    if not line:
        return text
    heading, _, body = text.lstrip("\n").partition("\n")
    body = body.lstrip("\n")
    if body.startswith(RUN_PREFIX):
        body = body.partition("\n\n")[2]
    return f"{heading}\n\n{line}\n\n{body}"


def split_sections(doc: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first ``## `` heading, [(heading line, section text)])."""
    intro: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    fence = False
    for line in doc.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        if line.startswith("## ") and not fence:
            sections.append((line.rstrip("\n"), [line]))
        elif sections:
            sections[-1][1].append(line)
        else:
            intro.append(line)
    return "".join(intro), [(h, "".join(body)) for h, body in sections]


def _rank(heading: str) -> int:
    for i, known in enumerate(ORDER):
        if heading.startswith(known):
            return i
    return len(ORDER) + 1 if heading.startswith(LAST) else len(ORDER)


def write_section(heading: str, text: str, doc: Path | None = None) -> None:
    """Replace (or add) the section under ``heading`` of docs/benchmarks.md.

    Sections are then put in :data:`ORDER`; sections this module does not know
    keep their relative order after those, and the hand-written :data:`LAST`
    section stays at the end, untouched.
    """
    doc = doc or DOC
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    intro, sections = split_sections(old)
    # The summary states its run in its own words; every other section gets the run line.
    new_text = (text if heading.startswith(SUMMARY) else with_run_line(text)).strip("\n") + "\n"
    for i, (h, _) in enumerate(sections):
        if h.startswith(heading):
            sections[i] = (h, new_text)
            break
    else:
        sections.append((heading, new_text))
    ordered = sorted(sections, key=lambda hs: _rank(hs[0]))  # stable
    parts = [intro.rstrip("\n") + "\n"] + [body.strip("\n") + "\n" for _, body in ordered]
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, doc)
