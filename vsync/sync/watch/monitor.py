"""The fsmonitor's watching side: which paths changed since a token.

A thread reads a :class:`~.inotify_tree.TreeWatch` and keeps a *journal*: each
changed path with the number of the change that last touched it. A token is
(this monitor's instance, a change number): the instance is 16 random bytes
drawn each time the monitor has set every watch afresh, so a token of another
watcher, or of this one before it lost events, is never taken for one of now.

:meth:`FolderMonitor.changes_since` is answered only after the thread has seen
the event of a cookie file created for the question (watchman's cookies):
every change made before the question is then in the journal. The answer is
"full" (walk the whole folder) when the token is of another instance, older
than the journal reaches back (it keeps :data:`JOURNAL_MAX` paths), or when more
than :data:`~vsync.model.fsmonitor.MAX_PATHS` paths changed; and while the
monitor is not watching trustworthily: before its watches are set, after the
kernel's queue overflowed (until every watch is set again), and while a
watch limit keeps a folder unwatched (it tries again every
:data:`RETRY_SECONDS`). The user is told once each time it stops being
trustworthy, and once when it is again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vsync.model.fsmonitor import COOKIE_PREFIX, MAX_PATHS
from vsync.model.paths import CONTROL_NAME
from vsync.model.statcache import MonitorToken
from vsync.sync.watch.inotify_tree import EventsLost, TreeWatch, WatchLimit, watch_limit

JOURNAL_MAX = 200_000  # paths remembered; a token older than the oldest of them: full
COOKIE_WAIT = 0.8  # seconds a question waits for its cookie before answering "full"
RETRY_SECONDS = 30.0  # after a watch limit, set every watch again this often
POLL_MS = 200  # the thread looks at the stop flag at least this often

Say = Callable[..., None]  # the reporter's event(name, **fields)


@dataclass(frozen=True)
class Changes:
    """An answer: the token now (None: not trustworthy) and the paths changed since the
    token asked about (None: unknown, walk everything; ``reason`` says why)."""

    token: MonitorToken | None
    paths: list[str] | None
    reason: str = ""


class FolderMonitor:
    def __init__(self, root: Path, control: Path, say: Say) -> None:
        self.root = root
        self.control = control
        self._say = say
        self._lock = threading.Lock()
        self._instance: bytes | None = None  # None: not trustworthy now
        self._seq = 0
        self._floor = 0  # the journal holds every change numbered above this
        self._journal: dict[str, int] = {}  # path -> number of its last change, oldest first
        self._cookies: dict[str, threading.Event] = {}
        self._cookie_numbers = itertools.count(1)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="vsync-fsmonitor", daemon=True)
        self._lost_told = False  # the user was told it is not trustworthy (not yet back)
        self.reason = "starting"  # why it is not trustworthy, while it is not

    # -- control -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def trusted(self) -> bool:
        with self._lock:
            return self._instance is not None

    # -- questions (any thread) ------------------------------------------------------
    def changes_since(self, since: MonitorToken | None) -> Changes:
        """The paths changed since ``since`` (see the module docstring)."""
        with self._lock:
            if self._instance is None:
                return Changes(None, None, self.reason)
        if not self._sync():
            return Changes(None, None, "timeout")
        with self._lock:
            instance = self._instance
            if instance is None:
                return Changes(None, None, self.reason)
            now = (instance, self._seq)
            if since is None:
                return Changes(now, None, "no-token")
            if since[0] != instance or since[1] > self._seq:
                return Changes(now, None, "unknown-token")
            if since[1] < self._floor:
                return Changes(now, None, "too-many")
            paths: list[str] = []
            for path, seq in reversed(self._journal.items()):
                if seq <= since[1]:
                    break
                paths.append(path)
                if len(paths) > MAX_PATHS:
                    return Changes(now, None, "too-many")
        paths.sort()
        return Changes(now, paths)

    def _sync(self) -> bool:
        """Create a cookie and wait until the thread has seen it: True if it did in time."""
        name = f"{COOKIE_PREFIX}{os.getpid()}-{next(self._cookie_numbers)}"
        seen = threading.Event()
        with self._lock:
            self._cookies[name] = seen
        path = self.control / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.close(fd)
        except OSError:
            with self._lock:
                self._cookies.pop(name, None)
            return False
        try:
            return seen.wait(COOKIE_WAIT)
        finally:
            with self._lock:
                self._cookies.pop(name, None)
            with contextlib.suppress(OSError):
                os.unlink(path)

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            tree = TreeWatch(self.root)
            try:
                tree.start()
            except WatchLimit as exc:
                tree.close()
                self._untrusted("watch-limit", self._limit_hint(exc))
                self._pause(RETRY_SECONDS)
                continue
            self._trusted(tree.watches)
            try:
                self._follow(tree)
            except EventsLost:
                self._untrusted(
                    "overflow",
                    "the kernel's event queue overflowed (fs.inotify.max_queued_events); "
                    "watching every folder again",
                )
            except WatchLimit as exc:
                self._untrusted("watch-limit", self._limit_hint(exc))
                tree.close()
                self._pause(RETRY_SECONDS)
                continue
            except OSError as exc:
                self._untrusted("error", f"watching the folder failed: {exc}")
                tree.close()
                self._pause(RETRY_SECONDS)
                continue
            except BaseException as exc:  # a bug: say so, answer "full" from now on
                self._untrusted("error", f"watching the folder failed: {exc!r}")
                tree.close()
                self._release_cookies()
                raise
            finally:
                if self._stop.is_set():
                    with self._lock:
                        self._instance = None  # a question still waiting gets "full"
                        self.reason = "stopping"
                self._release_cookies()
            tree.close()

    def _limit_hint(self, exc: WatchLimit) -> str:
        return (
            f"{exc}: the inotify limit is reached (fs.inotify.max_user_watches = "
            f"{watch_limit()}); status and commit walk the whole folder until every "
            "folder is watched; raise it with 'sysctl fs.inotify.max_user_watches=N'"
        )

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            select.select([self._wake_r], [], [], min(0.5, deadline - time.monotonic()))
            self._drain_wake()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 64):
                pass

    def _follow(self, tree: TreeWatch) -> None:
        poller = select.poll()
        poller.register(tree.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            poller.poll(POLL_MS)
            self._drain_wake()
            changed = tree.read()
            cookies, tree.cookies = tree.cookies, []
            with self._lock:
                for path in changed:
                    self._record(path)
                for name in cookies:
                    seen = self._cookies.get(name)
                    if seen is not None:
                        seen.set()

    def _record(self, path: str) -> None:
        if path.split("/", 1)[0] == CONTROL_NAME:
            return
        self._seq += 1
        self._journal.pop(path, None)
        self._journal[path] = self._seq
        if len(self._journal) > JOURNAL_MAX:
            oldest = next(iter(self._journal))
            self._floor = self._journal.pop(oldest)

    def _trusted(self, watches: int) -> None:
        with self._lock:
            self._instance = secrets.token_bytes(16)
            self._seq = self._floor = 0
            self._journal.clear()
            self.reason = ""
            was_lost = self._lost_told
            self._lost_told = False
        self._say("monitor", state="watching", folders=watches, again="yes" if was_lost else "no")

    def _untrusted(self, reason: str, message: str) -> None:
        with self._lock:
            self._instance = None
            self._journal.clear()
            self.reason = reason
            tell = not self._lost_told
            self._lost_told = True
        if tell:
            self._say("monitor", state="full-walks", reason=reason, message=message)

    def _release_cookies(self) -> None:
        with self._lock:
            for seen in self._cookies.values():
                seen.set()  # the answer then sees it is not trustworthy
