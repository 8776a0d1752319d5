"""Commands that check and tidy a repository: fsck, gc."""

from __future__ import annotations

import argparse
from typing import Any

from vsync.cli.output import escape_text, info
from vsync.model.repository import Repository
from vsync.ops.fsck import fsck
from vsync.ops.gc import gc
from vsync.ui.progress import human_bytes, progress_for

EXIT_DAMAGED = 3


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fsck", help="verify every commit, file and chunk history can reach (exit 3 if damaged)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_fsck)

    p = sub.add_parser("gc", help="drop chunks and objects no commit or reflog entry needs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_gc)


def cmd_fsck(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        result = fsck(repo, progress_for("fsck: checking chunks", args.quiet))
    for note in result.notes:
        info(f"fsck: {note}")
    for line in result.problems:
        print(escape_text(line, keep=""))
    if result.problems:
        n = len(result.problems)
        print(f"fsck: {n} problem{'s' if n != 1 else ''} found")
        return EXIT_DAMAGED
    print(
        f"checked {result.commits} commits, {result.files} files, {result.chunks} chunks "
        f"({human_bytes(result.chunk_bytes)}): no problems"
    )
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        result = gc(repo, progress_for("gc: verifying chunks to keep", args.quiet))
    for note in result.notes:
        info(f"gc: {note}")
    mib = 1024 * 1024
    dup = f" and {result.duplicates_removed} duplicate copies" if result.duplicates_removed else ""
    print(
        f"gc: removed {result.chunks_removed} chunks{dup} ({result.bytes_removed / mib:.1f} MiB), "
        f"rewrote {result.packs_rewritten} packs, store is now {result.store_bytes / mib:.1f} MiB"
    )
    return 0
