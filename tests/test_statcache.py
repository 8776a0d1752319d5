"""The flat stat cache (.vsync/statcache) and the clean status it allows.

Disposable (a damaged file is ignored and rebuilt, never believed), racy
entries never trusted, migrated from state.db, and a folder that changed in
any way a stat shows is never called clean by the stamp's fast path.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import time
from pathlib import Path

from conftest import Run, racy_wait
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vsync.model.clean_walk import folder_as_cached
from vsync.model.ignore import Ignore
from vsync.model.statcache import EMPTY, HEADER, RECORD, CacheFile, Row, StatCache, encode, parse

# The racy window (statcache.racy_ns): a file hashed sooner than this after its last
# change is hashed again. Tests that need a trusted entry wait it out once.
PAST_RACY_WINDOW = racy_wait()


def porcelain(vsync: object) -> list[str]:
    out: Run = vsync("status", "--porcelain")  # type: ignore[operator]
    return out.stdout.splitlines()


def cache_path(work: Path) -> Path:
    return work / ".vsync" / "statcache"


def committed_and_stamped(work: Path, vsync: object, files: dict[str, bytes]) -> None:
    """Write ``files``, wait out the racy window, commit; the cache then has a stamp."""
    for name, data in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    time.sleep(PAST_RACY_WINDOW)
    vsync("commit", "-m", "one")  # type: ignore[operator]
    cache = StatCache(work / ".vsync")
    assert cache.stamp is not None
    assert sorted(cache.paths()) == sorted(files)


def record_offset(data: bytes, path: str) -> int:
    parsed = parse(data)
    assert parsed is not None
    return HEADER.size + parsed.index[path] * RECORD.size


def test_a_damaged_cache_is_ignored_never_believed(work: Path, vsync) -> None:
    """A record made to match the edited file, but with the CRC left as it was: the
    cache is ignored, the edit seen, and the cache written again whole."""
    committed_and_stamped(work, vsync, {"a.txt": b"aaaa\n", "b.txt": b"bbbb\n"})
    (work / "a.txt").write_bytes(b"AAAA\n")
    st = os.lstat(work / "a.txt")
    data = bytearray(cache_path(work).read_bytes())
    at = record_offset(bytes(data), "a.txt")
    struct.pack_into("<QqqQI", data, at, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                     st.st_mode)  # fmt: skip
    cache_path(work).write_bytes(bytes(data))
    assert porcelain(vsync) == [" M a.txt"]
    rebuilt = parse(cache_path(work).read_bytes())
    assert rebuilt is not None and sorted(rebuilt.index) == ["a.txt", "b.txt"]


def test_garbage_or_a_cut_cache_is_rebuilt(work: Path, vsync) -> None:
    committed_and_stamped(work, vsync, {"a.txt": b"aaaa\n", "d/b.txt": b"bbbb\n"})
    whole = cache_path(work).read_bytes()
    for bad in (whole[: len(whole) // 2], b"garbage" * 50, b"", b"VSSC" + bytes(200)):
        cache_path(work).write_bytes(bad)
        (work / "d" / "b.txt").write_bytes(b"BBBB\n")
        assert porcelain(vsync) == [" M d/b.txt"]
        (work / "d" / "b.txt").write_bytes(b"bbbb\n")
        assert porcelain(vsync) == []
        assert parse(cache_path(work).read_bytes()) is not None


def test_racy_entries_are_never_trusted(tmp_path: Path) -> None:
    """An entry hashed within the racy window of its file's change does not match,
    so neither a lookup nor the clean walk takes the file as unchanged on its word."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "f").write_bytes(b"one")
    st = os.lstat(folder / "f")
    oid = b"ab" * 20
    stamp = (bytes(20), bytes(20), Ignore(folder).fingerprint)
    for hashed_at, trusted in ((st.st_ctime_ns + 1, False), (st.st_ctime_ns + 3 * 10**9, True)):
        control = tmp_path / f"control-{trusted}"
        control.mkdir()
        cache = StatCache(control)
        cache.record("f", st, oid, hashed_at)
        cache.set_stamp(stamp)
        cache.flush()
        again = StatCache(control)
        assert (again.lookup("f", st) == oid) is trusted
        assert folder_as_cached(folder, again.base(), Ignore(folder)) is trusted


def test_same_size_edit_in_the_same_second_is_seen(work: Path, vsync) -> None:
    """The stamp's fast path compares ctime, inode and nanoseconds too, not size and
    the second of the mtime."""
    committed_and_stamped(work, vsync, {"f.txt": b"aaaa\n"})
    assert porcelain(vsync) == []
    st = os.lstat(work / "f.txt")
    (work / "f.txt").write_bytes(b"bbbb\n")
    os.utime(work / "f.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert porcelain(vsync) == [" M f.txt"]


def test_a_file_replaced_by_a_folder(work: Path, vsync) -> None:
    committed_and_stamped(work, vsync, {"x": b"file\n", "keep.txt": b"k\n"})
    assert porcelain(vsync) == []
    (work / "x").unlink()
    (work / "x").mkdir()
    assert porcelain(vsync) == [" D x"]
    (work / "x" / "inner.txt").write_text("in\n")
    assert porcelain(vsync) == [" D x", "?? x/inner.txt"]


def test_new_deleted_and_ignored_files_after_a_stamp(work: Path, vsync) -> None:
    committed_and_stamped(
        work, vsync, {".vsyncignore": b"*.log\nbuild/\n", "a.txt": b"a\n", "s/b.txt": b"b\n"}
    )
    (work / "x.log").write_text("ignored\n")
    (work / "build").mkdir()
    (work / "build" / "out.o").write_text("ignored\n")
    assert porcelain(vsync) == []
    (work / "s" / "b.txt").unlink()
    assert porcelain(vsync) == [" D s/b.txt"]
    (work / "s" / "b.txt").write_text("b\n")
    assert porcelain(vsync) == []  # clean again: the stamp is written again
    (work / "s" / "c.txt").write_text("new\n")
    assert porcelain(vsync) == ["?? s/c.txt"]


def test_a_changed_ignore_file_that_is_not_tracked(work: Path, vsync) -> None:
    """Rules the stamp was not made with: a file they now leave out shows as deleted."""
    (work / ".vsyncignore").write_text(".vsyncignore\n")
    committed_and_stamped(work, vsync, {"a.log": b"a\n", "b.txt": b"b\n"})
    assert porcelain(vsync) == []
    (work / ".vsyncignore").write_text(".vsyncignore\n*.log\n")
    assert porcelain(vsync) == [" D a.log"]


def test_symlinks_are_cached_and_a_retargeted_one_is_seen(work: Path, vsync) -> None:
    committed_and_stamped(work, vsync, {"t1": b"1\n", "t2": b"2\n"})
    (work / "link").symlink_to("t1")
    time.sleep(PAST_RACY_WINDOW)
    vsync("commit", "-m", "link")
    assert porcelain(vsync) == []
    assert StatCache(work / ".vsync").get("link") is not None
    (work / "link").unlink()
    (work / "link").symlink_to("t2")
    assert porcelain(vsync) == [" M link"]


def test_migrated_from_state_db(work: Path, vsync) -> None:
    """A repository made before the flat file: its state.db rows are taken over (their
    hashing times kept, nothing read again) and the table is emptied."""
    committed_and_stamped(work, vsync, {"a.txt": b"aaaa\n"})
    row = StatCache(work / ".vsync").get("a.txt")
    assert row is not None
    cache_path(work).unlink()
    marker = row[5] + 12345  # a hashing time no fresh read would record
    db = sqlite3.connect(work / ".vsync" / "state.db")
    db.execute(
        "INSERT OR REPLACE INTO files(path, size, mtime_ns, ctime_ns, inode, mode, manifest,"
        " hashed_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("a.txt", *row[:5], row[6], marker),
    )
    db.commit()
    db.close()
    assert porcelain(vsync) == []
    migrated = StatCache(work / ".vsync").get("a.txt")
    assert migrated is not None and migrated[5] == marker
    db = sqlite3.connect(work / ".vsync" / "state.db")
    assert db.execute("SELECT count(*) FROM files").fetchone() == (0,)
    db.close()


def test_a_damaged_head_after_a_stamp_is_found_by_fsck(work: Path, vsync) -> None:
    """A clean status on the stamp reads no git object (so it still says clean);
    fsck reads them all and reports the damage."""
    committed_and_stamped(work, vsync, {"a.txt": b"aaaa\n" * 100})
    objects = work / ".vsync" / "git" / "objects"
    stored = [p for p in objects.rglob("*") if p.is_file() and p.suffix != ".idx"]
    assert stored
    for p in stored:
        p.chmod(0o644)
        data = bytearray(p.read_bytes())
        for i in range(12, len(data) - 20):
            data[i] ^= 0xFF
        p.write_bytes(bytes(data))
    assert porcelain(vsync) == []
    r = vsync("fsck", check=False)
    assert r.returncode == 3, r.stdout + r.stderr


def test_a_killed_writers_temporary_file_is_removed(work: Path, vsync) -> None:
    """statcache.tmp-<pid> of a writer that is gone goes at the next write; a live
    process's is left to it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = work / ".vsync" / f"statcache.tmp-{dead.pid}"
    abandoned.write_bytes(b"half a cache")
    live = work / ".vsync" / f"statcache.tmp-{os.getpid()}"
    live.write_bytes(b"being written")
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    assert not abandoned.exists()
    assert live.exists()


_paths = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=6,
)
_rows = st.tuples(
    *[st.integers(0, 2**40)] * 4,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**40),
    st.binary(min_size=20, max_size=20).map(lambda b: b.hex().encode()),
)


_ZERO_ROW: Row = (0, 0, 0, 0, 0, 0, b"0" * 40)


@settings(max_examples=300, deadline=None)
@example(  # an unsorted base whose entries are all forgotten, later first (found once)
    base={"0": _ZERO_ROW, "00": _ZERO_ROW}, pending={"0": None, "00": None}, shuffled=True
)
@given(
    base=st.dictionaries(_paths, _rows, max_size=30),
    pending=st.dictionaries(_paths, st.none() | _rows, max_size=12),
    shuffled=st.booleans(),
)
def test_encode_lays_changes_over_the_base_in_path_order(
    base: dict[str, Row], pending: dict[str, Row | None], shuffled: bool
) -> None:
    """encode splices the unchanged runs of the base file; what it writes parses back
    to the base with the changes laid over it, in code point order; from a base whose
    paths are out of order (never written by encode) it still writes every entry."""
    order = sorted(base, reverse=shuffled)
    base_file = parse(b"".join(encode(EMPTY, {p: base[p] for p in order}, None)))
    assert base_file is not None
    if shuffled:  # a file whose paths run backwards: never written by encode itself
        names = b"".join(p.encode() + b"\0" for p in order)
        records = b"".join(base_file.records[base_file.index[p] * RECORD.size :][: RECORD.size]
                           for p in order)  # fmt: skip
        base_file = CacheFile({p: i for i, p in enumerate(order)}, records, None, None, names)
    expected = {**base, **pending}
    data = b"".join(encode(base_file, pending, None))
    parsed = parse(data)
    assert parsed is not None
    kept = sorted(p for p, row in expected.items() if row is not None)
    assert (sorted(parsed.index) if shuffled else list(parsed.index)) == kept
    assert {p: parsed.row(i) for p, i in parsed.index.items()} == {
        p: row for p, row in expected.items() if row is not None
    }
