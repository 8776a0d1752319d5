"""Retry delays after a failed sync: 1 s, doubling, at most 60 s; reset on success."""

from __future__ import annotations

FIRST_DELAY = 1.0
MAX_DELAY = 60.0


class Backoff:
    def __init__(self, first: float = FIRST_DELAY, most: float = MAX_DELAY) -> None:
        self.first = first
        self.most = most
        self.failures = 0

    def failed(self) -> float:
        """Count one more failure; the seconds to wait before the next try."""
        delay = min(self.first * 2.0**self.failures, self.most)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self.failures > 0
