"""The object-store contract (vsync/sync/objstore): one suite for every backend.

Backends: the folder (a path remote), ``vsync serve`` as an object store (a local
subprocess and through the real sshd), and a bucket of S3-compatible storage
(a real SeaweedFS, tests/seaweed.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vsync.sync.objstore import BadObjectName, ObjectMissing, ObjectStore, check_name
from vsync.sync.objstore.folder import FolderStore
from vsync.sync.objstore.s3 import S3Store
from vsync.sync.objstore.s3config import s3_settings
from vsync.sync.objstore.served import ServedStore
from vsync.sync.protocol import RemoteError
from vsync.sync.url import parse_url

Opener = Callable[[], ObjectStore]


@pytest.fixture(params=["folder", "serve", "ssh", "s3"])
def opener(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Opener]:
    """Opens the same store again on each call, on each backend: the folder itself,
    ``vsync serve`` as a local subprocess, ``vsync serve`` through the real sshd
    (one connection per store: a connection serves one thread), and a prefix of a
    bucket on the real SeaweedFS."""
    root = tmp_path / "store"
    opened: list[ServedStore] = []

    def open_one() -> ObjectStore:
        if request.param == "folder":
            return FolderStore(root)
        if request.param == "s3":
            env = request.getfixturevalue("seaweed").env()
            url = parse_url(request.getfixturevalue("s3_url"))
            return S3Store(url, s3_settings(environ=env))
        if request.param == "serve":
            served = ServedStore.open(parse_url(str(root)))
        else:
            sshd = request.getfixturevalue("sshd_server")
            served = ServedStore.open(parse_url(sshd.url(root)), sshd.remote_cmd)
        opened.append(served)
        return served

    if request.param != "folder":
        root.mkdir()
        (root / "vsync-remote").write_bytes(b"vsync encrypted remote\nformat 1\n")
    if request.param == "ssh":
        for key, value in request.getfixturevalue("sshd_server").env().items():
            monkeypatch.setenv(key, value)
    try:
        yield open_one
    finally:
        for served in opened:
            served.close()


@pytest.fixture
def store(opener: Opener) -> ObjectStore:
    return opener()


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
    assert [n for n in store.list("") if n != "vsync-remote"] == [
        "index/a",
        "index/b",
        "packs/a",
        "refs/main",
        "top",
    ]
    assert store.list("nothing/") == []


def test_compare_and_swap_moves_only_from_what_it_was_told(store: ObjectStore) -> None:
    assert store.compare_and_swap("refs/main", None, b"one")
    assert not store.compare_and_swap("refs/main", None, b"two")
    assert not store.compare_and_swap("refs/main", b"zero", b"two")
    assert store.read("refs/main") == b"one"
    assert store.compare_and_swap("refs/main", b"one", b"two")
    assert store.read("refs/main") == b"two"


def test_racing_compare_and_swaps_one_wins(store: ObjectStore, opener: Opener) -> None:
    store.compare_and_swap("refs/main", None, b"base")
    racers = [opener() for _ in range(8)]
    wins: list[bytes] = []
    barrier = threading.Barrier(8)

    def racer(value: bytes) -> Callable[[], None]:
        mine = racers[value[0] - 65]

        def go() -> None:
            barrier.wait()
            if mine.compare_and_swap("refs/main", b"base", value):
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


def test_a_folder_store_takes_parallel_writes_through_one_instance(tmp_path: Path) -> None:
    """A push stores ``parallel_writes`` packs at once through one FolderStore: each
    lands whole, and of racing writes of one name exactly one writes it."""
    store = FolderStore(tmp_path / "s")
    threads = max(2, store.parallel_writes) * 2
    barrier = threading.Barrier(threads)
    wrote: list[bytes] = []

    def go(i: int) -> None:
        data = bytes([65 + i]) * (1 << 20)
        barrier.wait()
        assert store.write_if_absent(f"packs/{i}", data)
        if store.write_if_absent("index/same", data):
            wrote.append(data)

    workers = [threading.Thread(target=go, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert len(wrote) == 1 and store.read("index/same") == wrote[0]
    for i in range(threads):
        assert store.read(f"packs/{i}") == bytes([65 + i]) * (1 << 20)
    left = [n for _d, _s, files in os.walk(tmp_path / "s") for n in files if n.startswith(".")]
    assert left == []


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "write", "name": "../escape", "size": 1},
        {"op": "write", "name": "/tmp/escape", "size": 1},
        {"op": "read", "name": "../escape", "offset": 0, "length": 1},
        {"op": "delete", "name": "../store/vsync-remote"},
        {"op": "write", "name": "packs/big", "size": 1 << 40},
        {"op": "read", "name": "packs/a", "offset": -1, "length": 1},
        {"op": "list", "prefix": "../", "after": ""},
    ],
)
def test_the_server_refuses_hostile_requests(tmp_path: Path, request_: dict[str, object]) -> None:
    """A client that skips its own checks meets the server's: names are validated
    and sizes bounded there too, and the session ends with one error."""
    root = tmp_path / "store"
    root.mkdir()
    (root / "vsync-remote").write_bytes(b"vsync encrypted remote\nformat 1\n")
    (tmp_path / "escape").write_bytes(b"outside")
    served = ServedStore.open(parse_url(str(root)))
    try:
        with pytest.raises(RemoteError):
            served._ask(request_, b"x" if request_["op"] == "write" else None)
    finally:
        served.close()
    assert (tmp_path / "escape").read_bytes() == b"outside"
    assert sorted(p.name for p in root.iterdir()) == ["vsync-remote"]
