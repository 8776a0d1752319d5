"""Folder events: what changed in the working folder, and since when it is quiet.

The only module that imports watchfiles. A thread collects changed paths
(relative, ``.vsync/``, vsync's own temporary files and ignored paths left out);
the watcher takes them once the folder has been quiet for the settle time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import watchfiles

from vsync.model.ignore import Ignore
from vsync.model.paths import CONTROL_NAME

SETTLE_SECONDS = 1.0  # a folder quiet this long has settled
TEMP_PREFIX = ".vsync-tmp-"


class FolderEvents:
    def __init__(self, root: Path, wake: threading.Event) -> None:
        self.root = root
        self._real = os.path.realpath(root)
        self._wake = wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._last = 0.0
        self._ignore = Ignore(root)
        self._thread = threading.Thread(target=self._run, name="vsync-watch-events", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _relative(self, path: str) -> str | None:
        rel = os.path.relpath(path, self._real)
        if rel == "." or rel.startswith(".."):
            return None
        first = rel.split(os.sep, 1)[0]
        if first == CONTROL_NAME or os.path.basename(rel).startswith(TEMP_PREFIX):
            return None
        if os.path.basename(rel) == ".vsyncignore":
            self._ignore = Ignore(self.root)
            return rel
        with contextlib.suppress(ValueError):
            if self._ignore.ignored(rel.replace(os.sep, "/"), os.path.isdir(path)):
                return None
        return rel

    def _run(self) -> None:
        try:
            for changes in watchfiles.watch(
                self._real,
                watch_filter=None,  # everything: our own filter is _relative
                stop_event=self._stop,
                debounce=200,
                step=20,
                rust_timeout=500,
                yield_on_timeout=False,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                paths = {rel for _c, path in changes if (rel := self._relative(path)) is not None}
                if paths:
                    with self._lock:
                        self._pending |= paths
                        self._last = time.monotonic()
                    self._wake.set()
        except BaseException as exc:  # the watcher reports it and stops
            self.error = exc
            self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def quiet_for(self) -> float:
        """Seconds since the last change (a large number when nothing is pending)."""
        with self._lock:
            if not self._pending:
                return float("inf")
            return time.monotonic() - self._last

    def peek(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def take(self) -> set[str]:
        with self._lock:
            taken, self._pending = self._pending, set()
            return taken

    def put_back(self, paths: set[str]) -> None:
        """Changes a cycle took but did not sync (it failed): pending again."""
        with self._lock:
            self._pending |= paths
