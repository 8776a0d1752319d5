"""The one stable-read policy (vsync.model.stable_read) that every reader of the folder uses."""

from __future__ import annotations

import os
from pathlib import Path

from vsync.model.ingest import Ingester
from vsync.model.stable_read import READ_ATTEMPTS, content_id_if_unchanged, read_stable
from vsync.store.chunker import ChunkerParams


def _whole(fd: int, st: os.stat_result) -> tuple[bytes, int]:
    data = os.read(fd, st.st_size + 1)
    return data, len(data)


def test_a_file_that_holds_still_is_read_once(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"hello")
    calls: list[int] = []

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        calls.append(fd)
        return _whole(fd, st)

    got = read_stable(str(f), read)
    assert got is not None
    data, st, hashed_at = got
    assert data == b"hello" and st.st_size == 5 and hashed_at > 0
    assert len(calls) == 1


def test_a_file_written_during_every_read_is_unstable(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"x")
    calls = 0

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        nonlocal calls
        calls += 1
        out = _whole(fd, st)
        with open(f, "ab") as w:
            w.write(b"more")
        return out

    assert read_stable(str(f), read) is None
    assert calls == READ_ATTEMPTS


def test_a_file_changed_once_is_read_again(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"old")
    calls = 0

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        nonlocal calls
        calls += 1
        out = _whole(fd, st)
        if calls == 1:
            with open(f, "ab") as w:
                w.write(b"-new")
        return out

    got = read_stable(str(f), read)
    assert got is not None and got[0] == b"old-new" and calls == 2


def test_a_file_replaced_on_its_path_during_the_read_is_read_again(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    f = d / "a"
    f.write_bytes(b"first")
    calls = 0

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        nonlocal calls
        calls += 1
        out = _whole(fd, st)
        if calls == 1:  # the open file stays untouched; its path now names another
            d.rename(tmp_path / "moved")
            d.mkdir()
            f.write_bytes(b"second")
        return out

    got = read_stable(str(f), read)
    assert got is not None and got[0] == b"second" and calls == 2


def test_a_read_short_of_the_size_is_not_accepted(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"12345")
    assert read_stable(str(f), lambda fd, st: (b"", st.st_size - 1)) is None


def test_a_vanished_file_reads_as_none(tmp_path: Path) -> None:
    f = tmp_path / "a"
    assert read_stable(str(f), _whole) is None
    f.write_bytes(b"x")

    def read(fd: int, st: os.stat_result) -> tuple[bytes, int]:
        f.unlink()
        return _whole(fd, st)

    assert read_stable(str(f), read) is None


def test_content_id_only_for_the_stat_that_was_planned(tmp_path: Path) -> None:
    f = tmp_path / "a"
    f.write_bytes(b"planned")
    st = os.lstat(f)
    with Ingester(ChunkerParams(), 3) as ingester:
        oid = content_id_if_unchanged(str(f), st, ingester)
        assert oid is not None and len(oid) == 40
        f.write_bytes(b"edited afterwards")
        assert content_id_if_unchanged(str(f), st, ingester) is None
