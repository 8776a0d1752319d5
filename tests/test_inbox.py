"""The inbox between the SSH event loop and the protocol thread (vsync.sync.inbox)."""

from __future__ import annotations

import threading
import time

import pytest

from vsync.sync.inbox import Inbox


class Resumes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_pieces_come_out_in_order_then_the_end() -> None:
    box = Inbox(100, 10, Resumes())
    assert box.put([b"abc", b"", b"defgh"]) is False
    assert box.take(2, None) == b"ab"  # a piece longer than asked is split
    assert box.take(100, None) == b"c"
    assert box.take(100, None) == b"defgh"
    box.put([b"ij"])
    box.end()
    box.put([b"after the end"])
    assert box.take(100, None) == b"ij"
    assert box.take(100, None) == b""
    assert box.take(100, 0.01) == b""
    assert box.waiting == 0


def test_nothing_for_the_timeout_is_none() -> None:
    box = Inbox(100, 10, Resumes())
    started = time.monotonic()
    assert box.take(10, 0.2) is None
    assert time.monotonic() - started >= 0.2


def test_a_waiting_reader_is_woken_by_a_put() -> None:
    box = Inbox(100, 10, Resumes())
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(box.take(10, 5.0)))
    reader.start()
    time.sleep(0.1)
    box.put([b"late"])
    reader.join(5.0)
    assert got == [b"late"]


def test_past_high_the_source_pauses_once_and_resumes_once_at_low() -> None:
    resumes = Resumes()
    box = Inbox(high=100, low=40, resume=resumes)
    assert box.put([b"x" * 60]) is False
    assert box.put([b"x" * 50]) is True  # 110 waiting: pause now
    assert box.put([b"x" * 30]) is False  # already paused: said once
    assert box.waiting == 140
    assert box.take(60, None) == b"x" * 60
    assert resumes.count == 0  # 80 waiting, above low
    assert box.take(50, None) == b"x" * 50
    assert resumes.count == 1  # 30 waiting: resume
    assert box.take(30, None) == b"x" * 30
    assert resumes.count == 1
    assert box.put([b"x" * 101]) is True  # a new pause after the resume
    assert box.take(101, None) == b"x" * 101
    assert resumes.count == 2


def test_bad_water_marks_are_refused() -> None:
    with pytest.raises(ValueError):
        Inbox(high=10, low=10, resume=Resumes())
