"""The fsmonitor in a watcher: the folder monitor and its socket, started and stopped
together, with or without syncing (``vsync watch --monitor-only``).

On a system without inotify the watcher says so once and serves no socket: status
and commit then walk the folder, as they do with no watcher.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vsync.errors import StoppedError
from vsync.model.repository import Repository
from vsync.sync.watch.state import Reporter, WatchState

if TYPE_CHECKING:
    from vsync.sync.watch.monitor import FolderMonitor
    from vsync.sync.watch.query_server import QueryServer


class MonitorService:
    def __init__(self, root: Path, control: Path, reporter: Reporter) -> None:
        self.root = root
        self.control = control
        self.reporter = reporter
        self._parts: tuple[FolderMonitor, QueryServer] | None = None
        self.problem = ""

    def start(self) -> bool:
        """Start watching and serving; False (said once, kept in :attr:`problem`) where
        it cannot."""
        try:
            from vsync.sync.watch.monitor import FolderMonitor
            from vsync.sync.watch.query_server import QueryServer
        except (ImportError, OSError) as exc:  # no inotify here
            self.problem = f"inotify is not available: {exc}"
            self.reporter.event("monitor", state="unavailable", reason=self.problem)
            return False
        monitor = FolderMonitor(self.root, self.control, self.reporter.event)
        server = QueryServer(self.control, monitor)
        monitor.start()
        try:
            server.start()
        except OSError as exc:
            monitor.stop()
            self.problem = f"cannot serve {server.path}: {exc.strerror or exc}"
            self.reporter.event("monitor", state="unavailable", reason=self.problem)
            return False
        self._parts = (monitor, server)
        return True

    def stop(self) -> None:
        if self._parts is None:
            return
        monitor, server = self._parts
        self._parts = None
        server.stop()
        monitor.stop()


def run_monitor_only(repo: Repository, reporter: Reporter, stopping: threading.Event) -> None:
    """Answer status and commit's "what changed?" until ``stopping`` is set; nothing is
    committed, pulled or pushed."""
    root = repo.require_worktree()
    service = MonitorService(root, repo.control, reporter)
    reporter.event("started", folder=str(root), mode="monitor-only")
    state = WatchState("(no remote)", mode="monitor-only", transfer="monitoring")
    if not service.start():
        raise StoppedError(f"vsync watch --monitor-only: {service.problem}")
    try:
        while not stopping.is_set():
            reporter.status(state)
            stopping.wait(1.0)
    finally:
        service.stop()
    reporter.event("stopped")
