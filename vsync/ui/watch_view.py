"""What ``vsync watch`` shows: one status line on a terminal, log lines otherwise.

On a terminal the status line (last sync, pending changes, conflicts, transfer
state and rate) is rewritten in place, and each notable event is printed above
it. Otherwise every event is one line of ``key=value`` pairs (values with
spaces or quotes are JSON-quoted), starting with ``time=`` and ``event=``:
stable, for logs and scripts (docs/user-guide.md, "Watching a folder").
``--log FILE`` appends the same lines to FILE in both cases.
"""

from __future__ import annotations

import json
import time
from typing import TextIO

from vsync.sync.watch.state import WatchState
from vsync.ui.escape import one_line
from vsync.ui.progress import human_bytes
from vsync.wording import plural

QUIET_EVENTS = frozenset({"committed"})  # on a terminal the status line says enough


def log_value(value: object) -> str:
    text = one_line(str(value))
    if not text or any(c in text for c in ' "=\\'):
        return json.dumps(text, ensure_ascii=False)
    return text


def log_line(name: str, fields: dict[str, object], now: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
    parts = [f"time={stamp}", f"event={log_value(name)}"]
    parts += [f"{key}={log_value(value)}" for key, value in fields.items()]
    return " ".join(parts)


def status_text(state: WatchState, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if state.last_sync is None:
        last = "never"
    else:
        ago = max(0, int(now - state.last_sync))
        last = (
            f"{ago} s ago" if ago < 120 else time.strftime("%H:%M", time.localtime(state.last_sync))
        )
    transfer = state.transfer
    if state.transfer == "paused":
        transfer = f"paused: {state.detail}"
    elif state.transfer == "offline":
        retry = f", retrying in {state.retry_in:.0f} s" if state.retry_in else ""
        transfer = f"offline{retry}"
    elif state.transfer == "waiting" and state.detail:
        transfer = f"waiting: {state.detail}"
    rate = f" ({human_bytes(state.last_rate)}/s)" if state.last_rate else ""
    return one_line(
        f"vsync watch {state.remote} [{state.mode}]: last sync {last} | "
        f"{state.pending} pending | {plural(state.conflicts, 'conflict')} | {transfer}{rate}"
    )


class WatchView:
    """The watcher's :class:`~vsync.sync.watch.state.Reporter`."""

    def __init__(self, out: TextIO, tty: bool, log: TextIO | None = None) -> None:
        self.out = out
        self.tty = tty
        self.log = log
        self._line = ""

    def event(self, name: str, **fields: object) -> None:
        line = log_line(name, fields)
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()
        if not self.tty:
            self.out.write(line + "\n")
            self.out.flush()
        elif name not in QUIET_EVENTS:
            self.out.write("\r\x1b[K" + line + "\n" + self._line)
            self.out.flush()

    def status(self, state: WatchState) -> None:
        if not self.tty:
            return
        line = status_text(state)
        if line != self._line:
            self._line = line
            self.out.write("\r\x1b[K" + line)
            self.out.flush()

    def close(self) -> None:
        if self.tty and self._line:
            self.out.write("\n")
            self.out.flush()
