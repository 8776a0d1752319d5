"""The server side of ``watch-v1``: tell a connected watcher when a ref moves.

After REFS the client may send WATCH instead of HAVES, PUSH or BYE. The server
answers WATCHING with the ref's value, then polls the ref file every
:data:`POLL_SECONDS` (reading it takes no lock: pushes, fetches and gc go on as
if nobody watched) and sends REF_MOVED when its value changes, KEEPALIVE when
nothing was sent for the interval the client asked for, and ends at the
client's BYE or end of stream (docs/protocol.md, "Watch").
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol, runtime_checkable

from vsync.model.repository import BRANCH, Repository
from vsync.sync import protocol as p
from vsync.sync.errors import TransportClosed
from vsync.sync.protocol import Connection, ProtocolError

POLL_SECONDS = 0.2
KEEPALIVE_MIN, KEEPALIVE_MAX, KEEPALIVE_DEFAULT = 1.0, 60.0, 15.0


@runtime_checkable
class PollablePipe(Protocol):
    def readable(self, timeout: float) -> bool: ...


def keepalive_interval(info: dict[str, Any]) -> float:
    """The client's ``keepalive`` (seconds), bounded to [1, 60]; 15 when absent."""
    raw = info.get("keepalive", KEEPALIVE_DEFAULT)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ProtocolError("the client sent a malformed keepalive in WATCH")
    return min(max(float(raw), KEEPALIVE_MIN), KEEPALIVE_MAX)


def _hex(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def serve_watch(conn: Connection, repo: Repository, info: dict[str, Any]) -> int:
    """Answer one WATCH until the client leaves; 0 when it said BYE or hung up."""
    if info.get("ref") != BRANCH.decode():
        raise ProtocolError(f"only {BRANCH.decode()} can be watched")
    keepalive = keepalive_interval(info)
    pipe = conn.pipe
    if not isinstance(pipe, PollablePipe):  # pragma: no cover - serve always has an FdPipe
        raise ProtocolError("this server cannot watch")
    value = repo.head()
    conn.send_json(p.WATCHING, {"ref": BRANCH.decode(), "value": _hex(value)})
    conn.flush()
    last_sent = time.monotonic()
    try:
        while True:
            if pipe.readable(POLL_SECONDS):
                conn.expect(p.BYE)
                return 0
            now = repo.head()
            if now != value:
                moved = {"ref": BRANCH.decode(), "old": _hex(value), "new": _hex(now)}
                conn.send_json(p.REF_MOVED, moved)
                conn.flush()
                value, last_sent = now, time.monotonic()
            elif time.monotonic() - last_sent >= keepalive:
                conn.send(p.KEEPALIVE)
                conn.flush()
                last_sent = time.monotonic()
    except TransportClosed:
        return 0  # the watcher went away: the usual end of a watch
