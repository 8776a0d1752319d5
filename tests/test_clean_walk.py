"""The clean-status walk (vsync.model.clean_walk): its per-file lstat comparison in C
(vsync.model._lstat_match) and in Python agree, and each says "changed" for every
kind of change a stat shows."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import vsync.model.clean_walk as clean_walk
from vsync.model.ignore import Ignore
from vsync.model.statcache import RECORD, StatCache

Matches = Callable[[str, list[str], list[int], bytes, int], bool]


def implementations() -> list[tuple[str, Matches]]:
    from vsync.model._lstat_match import matches  # built by every install with a compiler

    return [("c", matches), ("python", clean_walk._matches_py)]


@pytest.fixture(params=["c", "python"])
def matches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matches]:
    chosen = dict(implementations())[request.param]
    monkeypatch.setattr(clean_walk, "_matches", chosen)
    yield chosen


def test_the_c_loop_is_built() -> None:
    """``make test`` installs with a compiler: the walk must not fall back to Python
    unnoticed (a clean status would be two to three times slower)."""
    import vsync.model._lstat_match

    assert clean_walk._matches is vsync.model._lstat_match.matches


def cached_folder(tmp_path: Path) -> tuple[Path, StatCache]:
    """A folder of files and a symlink, every one recorded as hashed well after its
    change (not racy), and a clean stamp."""
    folder = tmp_path / "folder"
    (folder / "sub" / "deeper").mkdir(parents=True)
    files = {
        "a.txt": b"aaaa\n",
        "sub/b.bin": b"\x00" * 100,
        "sub/deeper/c": b"c\n",
        "sub/é.txt": b"accent\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    os.symlink("a.txt", folder / "link")
    control = tmp_path / "control"
    control.mkdir()
    cache = StatCache(control)
    for name in [*files, "link"]:
        st = os.lstat(folder / name)
        cache.record(name, st, b"ab" * 20, st.st_ctime_ns + 3 * 10**9)
    cache.set_stamp((bytes(20), bytes(20), Ignore(folder).fingerprint))
    cache.flush()
    return folder, StatCache(control)


def as_cached(folder: Path, control: Path) -> bool:
    return clean_walk.folder_as_cached(folder, StatCache(control).base(), Ignore(folder))


CHANGES: dict[str, Callable[[Path], None]] = {
    "size": lambda f: (f / "a.txt").write_bytes(b"aaaaa\n"),
    "mtime": lambda f: os.utime(f / "sub" / "b.bin", ns=(0, 10**9)),
    "ctime": lambda f: os.chmod(f / "sub" / "deeper" / "c", 0o644),  # same mode, new ctime
    "mode": lambda f: os.chmod(f / "sub" / "deeper" / "c", 0o755),
    "inode": lambda f: (
        (f / "a.new").write_bytes(b"aaaa\n"),
        os.utime(f / "a.new", ns=(0, os.lstat(f / "a.txt").st_mtime_ns)),
        os.replace(f / "a.new", f / "a.txt"),
    ),
    "non-ascii name": lambda f: os.utime(f / "sub" / "é.txt", ns=(0, 10**9)),
    "symlink": lambda f: (os.unlink(f / "link"), os.symlink("a.tx_", f / "link")),
    "deleted": lambda f: os.unlink(f / "sub" / "deeper" / "c"),
    "new file": lambda f: (f / "sub" / "new.txt").write_bytes(b"n"),
    "file made a folder": lambda f: (os.unlink(f / "a.txt"), os.mkdir(f / "a.txt")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_a_stat_shows_is_seen(tmp_path: Path, matches: Matches, change: str) -> None:
    folder, _ = cached_folder(tmp_path)
    control = tmp_path / "control"
    assert as_cached(folder, control)
    time.sleep(0.01)  # a ctime that differs from the recorded one
    CHANGES[change](folder)
    assert not as_cached(folder, control)


def test_both_loops_agree_file_by_file(tmp_path: Path) -> None:
    """Each file's answer from the C loop and the Python one, before and after each
    change, on the same records."""
    for change in [None, *sorted(CHANGES)]:
        scene = tmp_path / (change or "none").replace(" ", "-")
        scene.mkdir()
        folder, cache = cached_folder(scene)
        base = cache.base()
        time.sleep(0.01)
        if change is not None:
            CHANGES[change](folder)
        for path, at in base.index.items():
            parent, _, name = path.rpartition("/")
            answers = {
                impl: fn(str(folder / parent), [name], [at], base.records, RECORD.size)
                for impl, fn in implementations()
            }
            assert answers["c"] == answers["python"], (change, path)
            if change is None:
                assert answers["c"], path


def test_the_c_loop_refuses_what_is_not_a_record(tmp_path: Path) -> None:
    from vsync.model._lstat_match import matches

    (tmp_path / "f").write_bytes(b"x")
    records = bytes(RECORD.size)
    assert matches(str(tmp_path), ["f"], [0], records, RECORD.size) is False
    assert matches(str(tmp_path / "missing"), ["f"], [0], records, RECORD.size) is False
    for names, where in ((["f"], [1]), (["f"], [-1]), (["f\0"], [0]), (["f"], [])):
        with pytest.raises(ValueError):
            matches(str(tmp_path), names, where, records, RECORD.size)
    with pytest.raises(ValueError):
        matches(str(tmp_path), ["f"], [0], records, 10)


def test_commits_lstat_loop_agrees_with_python(tmp_path: Path) -> None:
    """folder_tree's per-folder lstat (commit's walk): the C loop and the Python one give
    the same keys, and None for a name gone since the folder was listed."""
    from vsync.model._lstat_match import lstat_keys
    from vsync.model.folder_tree import _lstat_keys, _lstat_keys_py

    assert _lstat_keys is lstat_keys
    folder, _ = cached_folder(tmp_path)
    for sub in (folder, folder / "sub", folder / "sub" / "deeper"):
        names = [*os.listdir(sub), "gone-already"]
        c, py = lstat_keys(str(sub), names), _lstat_keys_py(str(sub), names)
        assert c == py
        assert c[-1] is None and all(k is not None for k in c[:-1])
    os.chmod(folder / "sub" / "deeper" / "c", 0o755)
    st = os.lstat(folder / "sub" / "deeper" / "c")
    assert lstat_keys(str(folder / "sub" / "deeper"), ["c"]) == [
        (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
    ]
    with pytest.raises(FileNotFoundError):  # the walk then takes the folder as gone
        lstat_keys(str(tmp_path / "no-such-folder"), ["x"])
    assert _lstat_keys_py(str(tmp_path / "no-such-folder"), ["x"]) == [None]  # gone too
