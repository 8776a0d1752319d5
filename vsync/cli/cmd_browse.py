"""``vsync history [PATH]``: browse the versions of a file, or the commits of a folder.

On a terminal (stdin and stdout both ttys) this opens the full-screen browser
(:mod:`vsync.ui.history_browser`). Otherwise it prints a table, one row per
version (or commit), newest first, columns separated by two spaces::

    <10 hex commit id>  <YYYY-MM-DD HH:MM>  <host>  <size>  <subject>

The date is in the author's own UTC offset; the host is ``-`` when the
commit does not record one; the size is a human size (``1.2 KiB``) or
``symlink``; host and subject have control, C1 and bidi characters escaped
(:mod:`vsync.ui.escape`). For a folder (or no PATH: the whole folder), the size column is
the number of paths the commit changed (``3 paths``). PATH in no commit:
exit 2. No commits at all and no PATH: ``vsync: no commits yet`` on stderr,
exit 0. ``--json``: one JSON object, never the browser (:mod:`vsync.cli.json_out`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vsync.cli.output import interactive
from vsync.cli.paths import repo_path
from vsync.model.repository import Repository
from vsync.ops.versions import PathHistory, load_history
from vsync.ui.history_rows import table_row


def register(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="browse a file's versions (or the folder's commits) and restore one",
        description="On a terminal: a full-screen browser of PATH's versions with a preview, "
        "diffs, restore and save-beside ('?' lists the keys). Otherwise: a table. "
        "Without PATH: the commits of the whole folder and what each changed.",
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="a file (or folder) in the folder")
    p.add_argument(
        "--json", action="store_true", help="the versions (or commits) as one JSON object"
    )
    p.set_defaults(func=cmd_history)


def table(history: PathHistory) -> list[str]:
    items = history.commits if history.folder else history.versions
    return [table_row(item) for item in items]


def cmd_history(args: argparse.Namespace) -> int:
    with Repository.discover() as repo:
        path = repo_path(repo, args.path) if args.path else ""
        history = load_history(repo, path)
        if args.json:
            from vsync.cli.json_out import history_json, write_json

            write_json(history_json(history))
            return 0
        if not history.versions and not history.commits:
            print("vsync: no commits yet", file=sys.stderr)
            return 0
        if interactive():
            from vsync.ui.history_browser import run_history_browser  # prompt-toolkit: only here

            run_history_browser(repo, history)
            return 0
        rows = table(history)
    sys.stdout.buffer.write("".join(row + "\n" for row in rows).encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0
