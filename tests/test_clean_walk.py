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


def test_commits_folder_listing_agrees_with_python(tmp_path: Path) -> None:
    """folder_tree's listing of several folders at once (commit's walk): the C loop, on
    threads of its own, and the Python one give the same names and keys, an OSError of
    the same kind for a folder that is gone or is a file, and list at least the first
    folder whatever the entry limit."""
    from vsync.model._lstat_match import list_folders
    from vsync.model.folder_tree import _list_folders, _list_folders_py

    assert _list_folders is list_folders
    folder, _ = cached_folder(tmp_path)
    (folder / "sub" / "empty").mkdir()
    odd = os.fsencode(folder / "sub") + b"/not-utf8-\xff"  # os.listdir: surrogateescape
    os.close(os.open(odd, os.O_CREAT | os.O_WRONLY, 0o644))
    many = folder / "many"
    many.mkdir()
    for i in range(300):
        (many / f"f{i}").write_bytes(b"%d" % i)
    os.chmod(folder / "sub" / "deeper" / "c", 0o755)
    folders = [
        str(folder),
        str(folder / "sub"),
        str(folder / "sub" / "deeper"),
        str(folder / "sub" / "empty"),
        str(many),
        str(tmp_path / "no-such-folder"),
        str(folder / "a.txt"),
    ]

    def normal(listings: list[object]) -> list[object]:
        out: list[object] = []
        for item in listings:
            if isinstance(item, OSError):
                out.append((type(item), item.errno, item.filename))
            elif item is None:
                out.append(None)
            else:
                names, keys = item  # type: ignore[misc]
                out.append(sorted(zip(names, keys, strict=True)))
        return out

    for _ in range(5):  # the threads take the folders in a different order each time
        c = list_folders(folders, 1_000_000)
        assert normal(c) == normal(_list_folders_py(folders, 1_000_000))
    pairs = dict(zip(folders, c, strict=True))
    assert isinstance(pairs[str(tmp_path / "no-such-folder")], FileNotFoundError)
    assert isinstance(pairs[str(folder / "a.txt")], NotADirectoryError)
    names, keys = pairs[str(folder / "sub" / "deeper")]  # type: ignore[misc]
    st = os.lstat(folder / "sub" / "deeper" / "c")
    assert dict(zip(names, keys, strict=True))["c"] == (
        st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode
    )  # fmt: skip
    assert os.fsdecode(b"not-utf8-\xff") in pairs[str(folder / "sub")][0]  # type: ignore[index]
    # The entry limit: the first folder always, then no more once it is reached (each
    # of the C loop's threads may have taken one more folder before it saw the count).
    for listings in (
        list_folders([str(many), *folders], 1),
        _list_folders_py([str(many), *folders], 1),
    ):
        assert listings[0] is not None and len(listings[0][0]) == 300  # type: ignore[index]
        assert sum(item is not None for item in listings) <= min(4, os.cpu_count() or 1)
        assert any(item is None for item in listings)
