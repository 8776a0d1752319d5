"""Progress lines: on a terminal one line rewritten in place; transfers also log
occasional plain lines when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from vsync.model.folder_snapshot import ProgressSink
from vsync.ui.escape import one_line


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class TerminalProgress(ProgressSink):
    """Renders ``files a/b, bytes x/y, rate`` at most ten times a second."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = one_line(label)
        self.files = self.total_files = 0
        self.done = self.total = 0
        self.t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def start(self, files: int, total_bytes: int) -> None:
        self.total_files, self.total = files, total_bytes
        self.t0 = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        self._render()

    def file_done(self, path: str) -> None:
        self.files += 1
        self._render()

    def _render(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.t0, 1e-6)
        rate = self.done / elapsed
        pct = f" {100 * self.done / self.total:3.0f}%" if self.total else ""
        line = (
            f"{self.label}:{pct} files {self.files}/{self.total_files}, "
            f"{human_bytes(self.done)}/{human_bytes(self.total)}, {human_bytes(rate)}/s"
        )
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown or self.total_files:
            self._render(force=True)
            self.stream.write("\n")
            self.stream.flush()


def progress_for(
    label: str, quiet: bool = False, stream: TextIO | None = None
) -> ProgressSink | None:
    """A terminal progress sink when ``stream`` (stderr) is a terminal, else None."""
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return None
    return TerminalProgress(stream, label)


LOG_INTERVAL = 5.0  # seconds between the lines of a transfer's progress when not on a terminal


class TerminalTransferProgress:
    """Renders ``label: chunks a/b, bytes, rate, ETA`` for push and fetch.

    On a terminal (``live``) one line redrawn in place at most ten times a second;
    otherwise (a log, a pipe) a plain line at most every ``interval`` seconds, the
    first once a transfer has run that long (a short one writes nothing), and the
    final totals when it ends if any line was written.
    """

    def __init__(
        self,
        stream: TextIO,
        live: bool = True,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.live = live
        self.interval = interval if not live else 0.1
        self.clock = clock
        self.label = ""
        self.total = 0
        self.t0 = clock()
        self._last = self.t0 if not live else 0.0
        self._line = False
        self._state = (0, 0)
        self._shown = (-1, -1)  # the counts of the line last written

    def phase(self, label: str, total_chunks: int) -> None:
        self.label, self.total = one_line(label), total_chunks
        self.t0 = self.clock()
        if not self.live:
            self._last = self.t0

    def tick(self, chunks: int, nbytes: int, force: bool = False) -> None:
        self._state = (chunks, nbytes)
        now = self.clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.stream.write(self._render(now, chunks, nbytes))
        self.stream.flush()
        self._line = True
        self._shown = (chunks, nbytes)

    def _render(self, now: float, chunks: int, nbytes: int) -> str:
        elapsed = max(now - self.t0, 1e-6)
        rate = nbytes / elapsed
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and chunks:
            left = max(elapsed * (self.total - chunks) / chunks, 0.0)
            eta = f", ETA {int(left // 60)}:{int(left % 60):02d}"
        line = (
            f"{self.label}: chunks {chunks}{of}, {human_bytes(nbytes)}, {human_bytes(rate)}/s{eta}"
        )
        return f"\r\x1b[K{line}" if self.live else f"{line}\n"

    def done(self) -> None:
        if self._line:
            if self.live or self._shown != self._state:  # a log line is not written twice
                self.tick(*self._state, force=True)  # the final totals, not the last throttled
            if self.live:
                self.stream.write("\n")
                self.stream.flush()
            self._line = False


def transfer_progress_for(
    quiet: bool = False, stream: TextIO | None = None
) -> TerminalTransferProgress | None:
    """Transfer progress on ``stream`` (stderr): redrawn on a terminal, occasional
    lines otherwise; None with ``quiet``."""
    if quiet:
        return None
    stream = stream or sys.stderr
    return TerminalTransferProgress(stream, live=stream.isatty())
