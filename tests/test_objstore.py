"""The object-store contract (vsync/sync/objstore): one suite for every backend.

Backends now: the folder (a path remote). The SSH backend (``vsync serve`` as an
object store) joins the ``store`` fixture's parameters when it exists.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from vsync.sync.objstore import BadObjectName, ObjectMissing, ObjectStore, check_name
from vsync.sync.objstore.folder import FolderStore


@pytest.fixture(params=["folder"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return FolderStore(tmp_path / "store")


def test_write_if_absent_then_read_ranges(store: ObjectStore) -> None:
    assert store.write_if_absent("packs/ab", b"0123456789")
    assert store.read("packs/ab") == b"0123456789"
    assert store.read("packs/ab", 3, 4) == b"3456"
    assert store.read("packs/ab", 8, 100) == b"89"
    assert not store.write_if_absent("packs/ab", b"other")
    assert store.read("packs/ab") == b"0123456789"


def test_a_missing_object_is_one_error(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing):
        store.read("packs/none")


def test_list_gives_names_under_a_prefix_sorted(store: ObjectStore) -> None:
    for name in ("index/b", "index/a", "packs/a", "refs/main", "top"):
        store.write_if_absent(name, b"x")
    assert store.list("index/") == ["index/a", "index/b"]
    assert store.list("") == ["index/a", "index/b", "packs/a", "refs/main", "top"]
    assert store.list("nothing/") == []


def test_compare_and_swap_moves_only_from_what_it_was_told(store: ObjectStore) -> None:
    assert store.compare_and_swap("refs/main", None, b"one")
    assert not store.compare_and_swap("refs/main", None, b"two")
    assert not store.compare_and_swap("refs/main", b"zero", b"two")
    assert store.read("refs/main") == b"one"
    assert store.compare_and_swap("refs/main", b"one", b"two")
    assert store.read("refs/main") == b"two"


def test_racing_compare_and_swaps_one_wins(store: ObjectStore) -> None:
    store.compare_and_swap("refs/main", None, b"base")
    wins: list[bytes] = []
    barrier = threading.Barrier(8)

    def racer(value: bytes) -> Callable[[], None]:
        def go() -> None:
            barrier.wait()
            if store.compare_and_swap("refs/main", b"base", value):
                wins.append(value)

        return go

    threads = [threading.Thread(target=racer(bytes([65 + i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.read("refs/main") == wins[0]


def test_delete(store: ObjectStore) -> None:
    store.write_if_absent("packs/a", b"x")
    assert store.delete("packs/a")
    assert not store.delete("packs/a")
    assert store.list("packs/") == []


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/../b", ".tmp-1", "a//b", "A", "a/", "", "a/b/c/d/e", "x" * 300],
)
def test_names_that_could_escape_are_refused(store: ObjectStore, name: str) -> None:
    with pytest.raises(BadObjectName):
        check_name(name)
    with pytest.raises(BadObjectName):
        store.write_if_absent(name, b"x")
    with pytest.raises(BadObjectName):
        store.read(name)


def test_folder_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    store.write_if_absent("packs/a", b"x")
    store.compare_and_swap("refs/main", None, b"y")
    left = [n for _d, _s, files in os.walk(tmp_path / "s") for n in files if n.startswith(".tmp")]
    assert left == []
    assert store.list("") == ["packs/a", "refs/main"]
