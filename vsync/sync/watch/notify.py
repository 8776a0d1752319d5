"""The client side of ``watch-v1``: a thread holding a WATCH session to the remote.

It calls ``on_moved(value)`` with the branch's value when the session opens
(so a watcher catches up after each reconnection) and at every REF_MOVED. A
lost session is opened again with backoff; a server without the capability
ends the thread with ``supported = False`` (the watcher then polls).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from vsync.errors import VsyncError
from vsync.model.repository import BRANCH
from vsync.sync import protocol as p
from vsync.sync.client import Session, SyncOptions, open_session
from vsync.sync.remotes import Remote
from vsync.sync.watch.backoff import Backoff
from vsync.sync.watch.serve import KEEPALIVE_MAX, KEEPALIVE_MIN

OnMoved = Callable[[bytes | None], None]
OnState = Callable[[str, str], None]  # ("listening" | "lost" | "unsupported", detail)


def keepalive_for(idle_timeout: float | None) -> float:
    """The KEEPALIVE interval to ask for: a quarter of our idle timeout, within [1, 60]."""
    if idle_timeout is None:
        return KEEPALIVE_MAX
    return min(max(idle_timeout / 4, KEEPALIVE_MIN), KEEPALIVE_MAX)


def _value(info: dict[str, object], key: str, where: str) -> bytes | None:
    raw = info.get(key)
    return None if raw is None else p.parse_oid(raw, where)


class RemoteNotifier:
    def __init__(
        self,
        remote: Remote,
        opts: SyncOptions,
        idle_timeout: float | None,
        on_moved: OnMoved,
        on_state: OnState,
    ) -> None:
        self.remote = remote
        self.opts = opts
        self.idle_timeout = idle_timeout
        self.on_moved = on_moved
        self.on_state = on_state
        self._told_lost = False  # "lost" is said once until the session is back
        self.supported: bool | None = None  # None: not known yet
        self.connected = False
        self._stop = threading.Event()
        self._session: Session | None = None
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="vsync-watch-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._guard:
            session = self._session
        if session is not None:
            with contextlib.suppress(Exception):
                session.transport.abort()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self._watch_once(backoff)
                if self.supported is False:
                    self.on_state("unsupported", "the remote cannot notify; fetching periodically")
                    return
            except Exception as exc:  # a lost session: say why (once), wait, open another
                self.connected = False
                if self._stop.is_set():
                    return
                if not self._told_lost:
                    self._told_lost = True
                    self.on_state("lost", str(exc) if isinstance(exc, VsyncError) else repr(exc))
            self._stop.wait(backoff.failed())

    def _watch_once(self, backoff: Backoff) -> None:
        session = open_session(self.remote, self.opts, timeout=self.idle_timeout)
        with self._guard:
            self._session = session
        try:
            if self._stop.is_set():
                return
            conn = session.conn
            if not p.peer_has(session.hello, p.WATCH_V1):
                self.supported = False
                conn.send(p.BYE)
                conn.flush()
                return
            request = {"ref": BRANCH.decode(), "keepalive": keepalive_for(self.idle_timeout)}
            conn.send_json(p.WATCH, request)
            conn.flush()
            info = conn.expect(p.WATCHING).json()
            self.supported = self.connected = True
            self._told_lost = False
            backoff.reset()
            self.on_state("listening", "")
            self.on_moved(_value(info, "value", "WATCHING"))
            while not self._stop.is_set():
                moved = conn.expect(p.REF_MOVED).json()  # KEEPALIVE frames are skipped
                self.on_moved(_value(moved, "new", "REF_MOVED"))
        finally:
            self.connected = False
            with self._guard:
                self._session = None
            session.transport.abort()
