"""Commands that put committed content back in the folder: restore, checkout."""

from __future__ import annotations

import argparse
from typing import Any

from vsync.cli.output import info, short, warn
from vsync.cli.paths import repo_paths
from vsync.model.repository import Repository
from vsync.ops.checkout import checkout
from vsync.ops.restore import restore


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="bring files or folders back as a commit holds them",
        description="Write REV's version of each PATH (a file or a folder) into the "
        "working folder. Refuses to overwrite uncommitted changes unless --force.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-s", "--source", default="HEAD", metavar="REV", help="default: HEAD")
    p.add_argument("-f", "--force", action="store_true", help="overwrite uncommitted changes")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser(
        "checkout",
        help="put a commit's content in the folder (the branch stays)",
        description="Make the whole working folder equal REV. The branch does not move: "
        "the folder then shows as modified, and the next commit goes on top of HEAD.",
    )
    p.add_argument("rev", metavar="REV")
    p.add_argument("-f", "--force", action="store_true", help="overwrite uncommitted changes")
    p.set_defaults(func=cmd_checkout)


def cmd_restore(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        repo.require_worktree()
        paths = repo_paths(repo, args.paths)
        result = restore(repo, paths, args.source, args.force, warn)
    line = f"Restored {result.written} files"
    if result.deleted:
        line += f", {result.deleted} deleted"
    print(line)
    return 0


def cmd_checkout(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        repo.require_worktree()
        result = checkout(repo, args.rev, args.force, warn)
    print(
        f"Checked out {short(result.commit_id)}: {result.written} written, {result.deleted} deleted"
    )
    if result.head is not None and result.head != result.commit_id:
        info(f"main stays at {short(result.head)}; 'vsync commit' keeps this content on top of it")
    return 0
