"""Live progress on a terminal: one line rewritten in place, nothing otherwise."""

from __future__ import annotations

import sys
import time
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


class TerminalTransferProgress:
    """Renders ``label: chunks a/b, bytes, rate, ETA`` for push and fetch."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label = ""
        self.total = 0
        self.t0 = time.monotonic()
        self._last = 0.0
        self._line = False
        self._state = (0, 0)

    def phase(self, label: str, total_chunks: int) -> None:
        self.label, self.total = one_line(label), total_chunks
        self.t0 = time.monotonic()

    def tick(self, chunks: int, nbytes: int, force: bool = False) -> None:
        self._state = (chunks, nbytes)
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.t0, 1e-6)
        rate = nbytes / elapsed
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and chunks:
            left = elapsed * (self.total - chunks) / chunks
            eta = f", ETA {int(left // 60)}:{int(left % 60):02d}"
        self.stream.write(
            f"\r\x1b[K{self.label}: chunks {chunks}{of}, {human_bytes(nbytes)}, "
            f"{human_bytes(rate)}/s{eta}"
        )
        self.stream.flush()
        self._line = True

    def done(self) -> None:
        if self._line:
            self.tick(*self._state, force=True)  # the final totals, not the last throttled ones
            self.stream.write("\n")
            self.stream.flush()
            self._line = False


def transfer_progress_for(quiet: bool = False) -> TerminalTransferProgress | None:
    if quiet or not sys.stderr.isatty():
        return None
    return TerminalTransferProgress(sys.stderr)
