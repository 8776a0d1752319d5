"""Commands that go back: undo, reflog, revert-to.

Output formats (stable; scripts may read them):

``undo``
    One line on stdout saying what was done, e.g.
    ``Undid commit 1a2b3c4d5e (add notes): main is back at 9f8e7d6c5b`` or
    ``Redid checkout HEAD~2: 3 files written, 1 deleted``; hints on stderr.

``reflog``
    Newest first, one line per recorded event:
    ``<index> <10 hex> <YYYY-MM-DD HH:MM:SS> <kind>: <message>``, where the id
    is where main went (a checkout: the commit checked out; ``-`` when main
    was left with no commit) and the date is local time. Index 0 is what
    ``vsync undo`` acts on. ``--porcelain``: tab-separated
    ``<index> <source> <kind> <new> <old> <unix time> <message>`` with full
    ids (``-`` for none); source is ``branch`` or ``folder``; for a folder
    event ``new`` is the commit checked out and ``old`` the journal entry
    whose tree is the folder before the checkout. In both forms the message
    has its control, C1 and bidi characters escaped (``\\033``; see
    :mod:`vsync.ui.escape`), and in ``--porcelain`` its tabs and newlines are
    spaces.

``revert-to REV``
    ``Reverted to <10 hex>: new commit <10 hex> (N files written, M deleted)``
    ("1 file written" for one).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from vsync.cli.cmd_restore import at_or_rev
from vsync.cli.output import escape_text, info, short, warn
from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.ops.revert import revert_to
from vsync.ops.undo import UndoResult, timeline, undo
from vsync.wording import written_deleted


def register(sub: Any) -> None:
    p = sub.add_parser(
        "undo",
        help="undo the last commit, merge, pull or checkout (again: redo it)",
        description="Undo the newest event 'vsync reflog' lists. A commit: main goes back "
        "to its parent and its changes stay in the folder, uncommitted. A merge, pull or "
        "revert-to: main and the folder go back. A checkout: the folder goes back. Run "
        "it again right after to redo what it undid. Nothing is lost: every state stays "
        "in the reflog.",
    )
    p.add_argument(
        "-f", "--force", action="store_true", help="overwrite uncommitted edits in the way"
    )
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("reflog", help="list what 'vsync undo' can take back, newest first")
    p.add_argument("-n", dest="limit", type=int, metavar="N", help="show at most N entries")
    p.add_argument("--porcelain", action="store_true", help="stable tab-separated output")
    p.set_defaults(func=cmd_reflog)

    p = sub.add_parser(
        "revert-to",
        help="commit REV's content on top of HEAD (history is kept)",
        description="Make a new commit whose content is exactly REV's, and put that content "
        "in the folder. History is not rewritten, and 'vsync undo' takes it back.",
    )
    p.add_argument("rev", nargs="?", metavar="REV")
    p.add_argument("--at", metavar="DATE", help="the branch as it was on DATE (instead of REV)")
    p.set_defaults(func=cmd_revert_to)


def _describe(r: UndoResult) -> str:
    verb = "Undid" if r.verb == "undo" else "Redid"
    what = escape_text(r.message.partition(": ")[2], keep="")
    if r.kind == "checkout":
        return f"{verb} {what}: {written_deleted(r.written, r.deleted)}"
    if r.branch_to is None:
        line = f"{verb} {what}: main has no commit now"
    elif r.verb == "undo":
        line = f"{verb} {what}: main is back at {short(r.branch_to)}"
    else:
        line = f"{verb} {what}: main is at {short(r.branch_to)} again"
    if r.folder_moved:
        line += f" ({written_deleted(r.written, r.deleted)})"
    return line


def cmd_undo(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        result = undo(repo, warn, args.force)
    print(_describe(result))
    if result.kind == "commit" and result.verb == "undo":
        info("its changes are in the folder, uncommitted ('vsync status' lists them)")
    info("run 'vsync undo' again to take this back")
    return 0


def cmd_reflog(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("-n needs a number of entries, 0 or more")
    with Repository.discover() as repo:
        events = timeline(repo)
    if args.limit is not None:
        events = events[: args.limit]
    for i, ev in enumerate(events):
        if args.porcelain:
            new = ev.new.decode("ascii") if ev.new else "-"
            old = ev.old.decode("ascii") if ev.old else "-"
            fields = [str(i), ev.source, ev.kind, new, old, str(ev.time), ev.message]
            fields = [escape_text(f.replace("\t", " ").replace("\n", " ")) for f in fields]
            print("\t".join(fields))
        else:
            when = datetime.fromtimestamp(ev.time).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{i} {short(ev.new)} {when} {escape_text(ev.message, keep='')}")
    return 0


def cmd_revert_to(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        repo.require_worktree()
        if args.rev is None and args.at is None:
            raise UsageError("revert-to needs a REV (or --at DATE)")
        label, commit_id = at_or_rev(repo, args.rev, args.at, "REV")
        result = revert_to(repo, label, warn, commit_id or None)
    if result.commit_id is None:
        print(f"main already has {short(result.source)}'s content; nothing to commit")
        return 0
    print(
        f"Reverted to {short(result.source)}: new commit {short(result.commit_id)} "
        f"({written_deleted(result.written, result.deleted)})"
    )
    info("'vsync undo' takes it back")
    return 0
