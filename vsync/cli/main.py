"""``vsync`` entry point: parse arguments, run the command, map errors to exit codes.

Exit codes: 0 success; 1 stopped on something the user must act on; 2 bad
usage or input; 3 corrupt or unreadable repository. Errors are one line on
stderr; ``VSYNC_DEBUG=1`` adds the traceback of unexpected failures.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from vsync import __version__, errors
from vsync.cli.heap import keep_heap_small
from vsync.errors import VsyncError
from vsync.model.filemode import load_umask
from vsync.store import faults
from vsync.ui.escape import one_line

if TYPE_CHECKING:
    import logging
    import threading
    from types import FrameType

INTERRUPTED = "vsync: interrupted; the last commit is intact"
INTERRUPT_GRACE = 2.0  # seconds the clean-up after Ctrl-C may take before the process just ends
# The commands Ctrl-C ends (exit 130) within INTERRUPT_GRACE; not the interactive ones
# (resolve's shell, history's browser), where Ctrl-C is a key that does not quit.
ENDED_BY_CTRL_C = frozenset(
    {"commit", "push", "pull", "fetch", "sync", "clone", "checkout", "restore", "revert-to"}
    | {"undo", "gc", "fsck", "watch"}
)


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the width: its own asks ``shutil`` for the
    terminal size, which loads shutil (and lzma, bz2) for every argument added, in
    every command, help or not."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it: $COLUMNS, else
    the width of stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = " ".join(self.prog.split()[1:])
        hint = f"vsync {cmd} --help" if cmd else "vsync --help"
        self.exit(2, f"vsync: error: {one_line(message)} (see '{hint}')\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog="vsync", description="Versioned, synchronised folders.")
    parser.add_argument("--version", action="version", version=f"vsync {__version__}")
    parser.add_argument("-C", dest="chdir", metavar="PATH", help="run as if started in PATH")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in modules_for(argv):
        importlib.import_module(f"vsync.cli.{name}").register(sub)
    return parser


# Which module registers each command: only that one is imported for a run,
# which keeps start-up short (every test and script pays it on each call).
COMMAND_MODULES = {
    "init": "cmd_repo",
    "status": "cmd_repo",
    "commit": "cmd_repo",
    "log": "cmd_history",
    "diff": "cmd_history",
    "show": "cmd_history",
    "restore": "cmd_restore",
    "checkout": "cmd_restore",
    "clone": "cmd_sync",
    "remote": "cmd_sync",
    "fetch": "cmd_sync",
    "pull": "cmd_sync",
    "push": "cmd_sync",
    "sync": "cmd_sync",
    "serve": "cmd_sync",
    "watch": "cmd_watch",
    "merge": "cmd_merge",
    "resolve": "cmd_merge",
    "fsck": "cmd_maint",
    "gc": "cmd_maint",
    "history": "cmd_browse",
    "undo": "cmd_undo",
    "reflog": "cmd_undo",
    "revert-to": "cmd_undo",
    "key": "cmd_keys",
    "completion": "cmd_completion",
}
ALL_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))  # in the order of the table


def modules_for(argv: list[str] | None) -> tuple[str, ...]:
    """The command modules to load for ``argv``: one when the command is known."""
    args = list(sys.argv[1:] if argv is None else argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-C":
            i += 2
            continue
        if arg.startswith("-"):
            return ALL_MODULES  # --help / --version before any command
        module = COMMAND_MODULES.get(arg)
        return (module,) if module else ALL_MODULES
    return ALL_MODULES


def _utf8_streams() -> None:
    """Paths and messages are UTF-8 whatever the locale says (as git does)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")


def _attach_notice_handler(log: logging.Logger) -> None:
    """What the layers below report without stopping (``vsync.errors.notices()``, e.g.
    a stale lock file removed): one line each on stderr. Attached the first time a
    layer reports, so that a command that reports nothing never loads logging."""
    import logging

    class Notice(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"vsync: warning: {one_line(record.getMessage())}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Notice())
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    _utf8_streams()
    errors.attach_notice_handler = _attach_notice_handler
    _tune_gc()
    keep_heap_small()
    load_umask()  # process-wide: read it now, before any thread starts
    try:
        args = build_parser(argv).parse_args(argv)
    except ImportError as exc:  # a broken installation: still one line, no traceback
        print(
            f"vsync: internal error: cannot load a module ({one_line(str(exc))})", file=sys.stderr
        )
        return 1
    faults.set_command(args.command or "")
    if args.command in ENDED_BY_CTRL_C:
        _end_on_interrupt()
    try:
        if args.chdir:
            os.chdir(args.chdir)
        return int(args.func(args) or 0)
    except VsyncError as exc:
        for line in exc.lines():
            print(f"vsync: error: {one_line(line)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _report_interrupt()
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as exc:
        if os.environ.get("VSYNC_DEBUG"):
            import traceback

            traceback.print_exc()
        if isinstance(exc, OSError) or _is_sqlite_error(exc):
            message, code = _os_failure(exc)
            print(f"vsync: error: {one_line(message)}", file=sys.stderr)
            return code
        # a bug: still one line, never a traceback by default
        print(
            f"vsync: internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(set VSYNC_DEBUG=1 for details and report it)",
            file=sys.stderr,
        )
        return 1


def _is_sqlite_error(exc: BaseException) -> bool:
    """An error of SQLite (only possible once something imported it: a clean status
    never does)."""
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(exc, sqlite3.Error)


def _os_failure(exc: BaseException) -> tuple[str, int]:
    """The message and exit code for an error of the OS or of SQLite that no layer
    below turned into a VsyncError. A full disk is never damage (exit 1)."""
    from vsync.store.space import disk_full, is_disk_full
    from vsync.store.statedb import is_damage

    if is_disk_full(exc):
        if isinstance(exc, OSError):
            name = os.fsdecode(exc.filename) if exc.filename else "a file"
            return str(disk_full(exc, name)), 1
        return str(disk_full(exc, "state.db (the chunk index and stat cache)")), 1
    if not isinstance(exc, OSError):  # SQLite's
        if is_damage(exc):
            return f"state.db is damaged ({exc}); run 'vsync fsck' to rebuild it", 3
        return f"state.db cannot be used ({exc}); it was left as it is", 1
    where = f" ({os.fsdecode(exc.filename)})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; nothing was half-written", 1


_interrupt_reported: threading.Lock | None = None  # made before a handler can use it


def _report_interrupt() -> None:
    if _interrupt_reported is None or _interrupt_reported.acquire(blocking=False):
        print(INTERRUPTED, file=sys.stderr, flush=True)


def _end_on_interrupt() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main thread, whose clean-up (stopping a
    server this command started, closing files) runs as usual; but what waits for a
    worker thread (a pack being sealed, the chunking pool, the threads joined at exit)
    is given INTERRUPT_GRACE seconds only, then the process ends with 130 as a kill
    would end it (every command survives a kill: docs/format.md)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # Ctrl-C ignored (a background job) or handled by someone else
    import threading

    global _interrupt_reported
    _interrupt_reported = threading.Lock()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        timer = threading.Timer(INTERRUPT_GRACE, _hard_exit)
        timer.daemon = True
        timer.start()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def _hard_exit() -> None:
    _report_interrupt()
    transport = sys.modules.get("vsync.sync.transport")  # loaded only by commands that sync
    if transport is not None:
        transport.stop_local_servers()
    os._exit(130)


def _tune_gc() -> None:
    """A scan makes a few objects per file and frees them at the end: with the
    default thresholds the cyclic collector walks every live object again and
    again meanwhile. Collect far less often (cycles are still collected)."""
    gc.freeze()  # what start-up made lives as long as the process
    gc.set_threshold(100_000, 50, 100)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
