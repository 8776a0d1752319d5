"""Commands that put committed content back in the folder: restore, checkout.

``--at DATE`` (both) stands for the branch as it was on DATE, read from its
reflog (``main@{DATE}``); it replaces REV / ``--source``, and a date before
the first commit is refused (exit 2). ``checkout`` records what the folder
held first, so ``vsync undo`` can put it back (:mod:`vsync.ops.undo_journal`).
"""

from __future__ import annotations

import argparse
from typing import Any

from vsync.cli.output import info, quote_path, short, warn
from vsync.cli.paths import repo_path, repo_paths
from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.model.revisions import resolve_at
from vsync.ops.restore import restore, restore_as
from vsync.ops.undo_journal import checkout_recorded
from vsync.wording import plural, written_deleted


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="bring files or folders back as a commit holds them",
        description="Write REV's version of each PATH (a file or a folder) into the "
        "working folder. Refuses to overwrite uncommitted changes unless --force. "
        "A deleted file comes back from the commit before the one that deleted it "
        "(see 'vsync log --deleted'): vsync restore PATH --source COMMIT~1",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-s", "--source", metavar="REV", help="default: HEAD")
    p.add_argument("--at", metavar="DATE", help="the branch as it was on DATE (instead of REV)")
    p.add_argument(
        "--as",
        dest="as_path",
        metavar="NEWPATH",
        help="write it beside the current version under this name (file or folder)",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite uncommitted changes")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser(
        "checkout",
        help="put a commit's content in the folder (the branch stays)",
        description="Make the whole working folder equal REV. The branch does not move: "
        "the folder then shows as modified, and the next commit goes on top of HEAD. "
        "'vsync undo' puts the folder back as it was before.",
    )
    p.add_argument("rev", nargs="?", metavar="REV")
    p.add_argument("--at", metavar="DATE", help="the branch as it was on DATE (instead of REV)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite uncommitted changes")
    p.set_defaults(func=cmd_checkout)


def at_or_rev(repo: Repository, rev: str | None, at: str | None, name: str) -> tuple[str, bytes]:
    """The revision label and, with ``--at``, its commit id (else b"": resolve the label)."""
    if at is None:
        return rev or "HEAD", b""
    if rev is not None:
        raise UsageError(f"give either {name} or --at, not both")
    return f"main@{{{at}}}", resolve_at(repo, at)


def cmd_restore(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        repo.require_worktree()
        label, commit_id = at_or_rev(repo, args.source, args.at, "--source")
        paths = repo_paths(repo, args.paths)
        if args.as_path is not None:
            if len(paths) != 1:
                raise UsageError("--as takes exactly one PATH")
            new_path = repo_path(repo, args.as_path)
            result = restore_as(
                repo, paths[0], new_path, label, args.force, warn, commit_id or None
            )
            as_name = quote_path(new_path)
            source = short(result.source)
            print(f"Restored {plural(result.written, 'file')} as '{as_name}' from {source}")
            return 0
        result = restore(repo, paths, label, args.force, warn, commit_id or None)
    line = f"Restored {plural(result.written, 'file')}"
    if result.deleted:
        line += f", {result.deleted} deleted"
    print(line)
    return 0


def cmd_checkout(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        repo.require_worktree()
        if args.rev is None and args.at is None:
            raise UsageError("checkout needs a REV (or --at DATE)")
        label, commit_id = at_or_rev(repo, args.rev, args.at, "REV")
        result = checkout_recorded(repo, label, args.force, warn, commit_id or None)
    print(
        f"Checked out {short(result.commit_id)}: {written_deleted(result.written, result.deleted)}"
    )
    if result.head is not None and result.head != result.commit_id:
        info(f"main stays at {short(result.head)}; 'vsync commit' keeps this content on top of it")
    if result.written or result.deleted:
        info("'vsync undo' puts the folder back as it was")
    return 0
