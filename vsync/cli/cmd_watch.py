"""``vsync watch [REMOTE]``: keep the folder in step with a remote as files change.

``vsync watch --monitor-only``: only answer status and commit's "what changed?"
(the fsmonitor), committing, pulling and pushing nothing; no remote needed.

Exit codes: 0 ``--once`` synced, or SIGTERM ended the watcher after its step in
progress; 1 another watcher holds the folder, ``--once`` stopped on conflicts or
on an unreachable remote, or ``--monitor-only`` cannot watch on this system;
2 bad usage; 3 a damaged repository; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any, TextIO

from vsync.cli.cmd_sync import add_ssh_options
from vsync.cli.passphrase import key_passphrase_source, passphrase_source
from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.sync.client import SyncOptions
from vsync.sync.remotes import find_remote
from vsync.ui.progress import transfer_progress_for


def register(sub: Any) -> None:
    p = sub.add_parser("watch", help="keep the folder in step with a remote as files change")
    p.add_argument("remote", nargs="?", help="remote name or URL (default: origin)")
    p.add_argument("--once", action="store_true", help="one cycle (commit, pull, push), then exit")
    p.add_argument(
        "--monitor-only",
        action="store_true",
        help="only keep status and commit fast (answer what changed); never commit, pull "
        "or push (no remote needed)",
    )
    p.add_argument("--log", metavar="FILE", help="also append the event lines to FILE")
    p.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        help="fetch this often when the remote cannot notify (default: watch.pollInterval, 30)",
    )
    add_ssh_options(p)
    p.set_defaults(func=cmd_watch)


def _open_log(path: str | None) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot open the log file {path}: {exc.strerror}") from None


def cmd_watch(args: argparse.Namespace) -> int:
    from vsync.sync.watch.lock import WatchLock
    from vsync.sync.watch.loop import Watcher, WatchSettings, poll_interval
    from vsync.ui.watch_view import WatchView

    if args.monitor_only and (args.remote or args.once or args.poll_interval is not None):
        raise UsageError(
            "--monitor-only syncs nothing: it takes no REMOTE, --once or --poll-interval"
        )
    log = _open_log(args.log)
    try:
        with Repository.discover() as repo:
            root = repo.require_worktree()
            if args.monitor_only:
                return _monitor_only(repo, log)
            remote = find_remote(repo, args.remote)
            settings = WatchSettings(poll_interval=poll_interval(repo, args.poll_interval))
            opts = SyncOptions(
                remote_cmd=args.remote_cmd,
                accept_new_host_key=args.accept_new_host_key,
                progress=transfer_progress_for() if args.once else None,
                passphrase=passphrase_source(args.password_file),
                key_passphrase=key_passphrase_source(),  # asked once, at the first connection
            )
            tty = sys.stdout.isatty() and not args.once
            view = WatchView(sys.stdout, tty, log)
            with WatchLock(repo.control, root):
                watcher = Watcher(repo, remote, opts, view, settings)
                if args.once:
                    result = watcher.once()
                    return 1 if result.waiting_on_merge else 0

                def on_term(signum: int, frame: FrameType | None) -> None:
                    watcher.stop()

                signal.signal(signal.SIGTERM, on_term)
                try:
                    watcher.run()
                finally:
                    view.close()
            return 0
    finally:
        if log is not None:
            log.close()


def _monitor_only(repo: Repository, log: TextIO | None) -> int:
    import threading

    from vsync.sync.watch.fsmon import run_monitor_only
    from vsync.sync.watch.lock import WatchLock
    from vsync.ui.watch_view import WatchView

    view = WatchView(sys.stdout, sys.stdout.isatty(), log)
    stopping = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    with WatchLock(repo.control, repo.require_worktree()):
        signal.signal(signal.SIGTERM, on_term)
        try:
            run_monitor_only(repo, view, stopping)
        finally:
            view.close()
    return 0
