"""What a watcher shows: its state (the status line) and its events (log lines).

The watcher calls a :class:`Reporter`; the UI (``vsync/ui/watch_view.py``)
renders it. Nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class WatchState:
    remote: str
    mode: str = "notify"  # how remote changes arrive: "notify" (watch-v1) or "poll"
    transfer: str = "idle"  # idle, syncing, waiting (a file is being written), offline, paused
    pending: int = 0  # changed paths not yet committed
    conflicts: int = 0  # paths a merge in progress left unresolved
    last_sync: float | None = None  # time.time() of the last cycle that reached the remote
    last_rate: float | None = None  # bytes per second of the last transfer that moved data
    detail: str = ""  # why offline, waiting or paused
    retry_in: float | None = None  # seconds until the next try (offline)


class Reporter(Protocol):
    def event(self, name: str, **fields: object) -> None: ...
    def status(self, state: WatchState) -> None: ...
