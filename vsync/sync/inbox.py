"""Bytes handed from one thread to another in order, with flow control: no socket between.

The SSH transport's event loop puts each piece its channel delivers (asyncssh's
packets, up to 32 KiB); the protocol thread takes them. Nothing is copied and no
system call is made on the way (a socketpair cost two kernel copies of every
byte, and its sends allocated socket buffers: a quarter of a clone's client CPU).

Flow control: :meth:`Inbox.put` answers True when the bytes waiting pass
``high``; the producer then stops its source (the SSH channel stops widening its
window, so the server stops within one window). Once the consumer has taken them
down to ``low``, :meth:`Inbox.take` calls ``resume`` (on the consumer's thread,
once per pause). So the inbox holds at most ``high`` plus what the source still
delivers after its pause.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Inbox:
    """Pieces of a byte stream, in order, from a producer thread to a consumer."""

    def __init__(self, high: int, low: int, resume: Callable[[], None]) -> None:
        if not 0 <= low < high:
            raise ValueError("an inbox needs 0 <= low < high")
        self.high = high
        self.low = low
        self._resume = resume
        self._cv = threading.Condition(threading.Lock())
        self._pieces: deque[bytes] = deque()
        self._bytes = 0
        self._ended = False
        self._paused = False

    @property
    def waiting(self) -> int:
        """Bytes put and not yet taken."""
        return self._bytes

    def put(self, pieces: list[bytes]) -> bool:
        """Add ``pieces`` in order (kept, not copied: never change them afterwards);
        True when the producer must pause its source now (once per pause). Ignored
        after :meth:`end`."""
        with self._cv:
            if self._ended:
                return False
            for piece in pieces:
                if piece:
                    self._pieces.append(piece)
                    self._bytes += len(piece)
            self._cv.notify()
            if self._paused or self._bytes <= self.high:
                return False
            self._paused = True
            return True

    def end(self) -> None:
        """No more bytes: a consumer gets what is left, then b"" (end of stream)."""
        with self._cv:
            self._ended = True
            self._cv.notify_all()

    def take(self, n: int, timeout: float | None) -> bytes | None:
        """The next piece, at most ``n`` bytes; b"" once ended and empty; None when
        nothing came for ``timeout`` seconds (None: wait for ever)."""
        resume = False
        with self._cv:
            if not self._pieces and not self._ended:
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._pieces and not self._ended:
                    if deadline is None:
                        self._cv.wait()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cv.wait(left)
            if not self._pieces:
                return b""
            data = self._pieces.popleft()
            if len(data) > n:
                self._pieces.appendleft(data[n:])
                data = data[:n]
            self._bytes -= len(data)
            if self._paused and self._bytes <= self.low:
                self._paused = False
                resume = True
        if resume:
            self._resume()
        return data
