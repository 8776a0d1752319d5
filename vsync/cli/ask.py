"""Questions put to the user on a terminal (and only there)."""

from __future__ import annotations

import argparse
import sys

from vsync.cli.output import one_line
from vsync.ops.mass_change import Confirm, MassChange


def interactive() -> bool:
    """Standard input and standard error are both a terminal: someone can answer."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def mass_change_confirm() -> Confirm | None:
    """The mass-change question on a terminal; None (refuse) when nobody can answer."""
    if not interactive():
        return None

    def ask(change: MassChange) -> bool:
        question = "Commit and share it anyway?" if change.step == "commit" else "Apply it anyway?"
        sys.stderr.write(f"vsync: {one_line(change.summary())}\n{question} [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        return answer.strip().lower() in ("y", "yes")

    return ask


def add_allow_mass_change(p: argparse.ArgumentParser) -> None:
    """The ``--allow-mass-change`` option of pull, sync and merge."""
    p.add_argument(
        "--allow-mass-change",
        action="store_true",
        help="do not stop (or ask) when many tracked files would be deleted or overwritten",
    )
