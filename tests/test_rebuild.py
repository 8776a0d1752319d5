"""Going back a version of a large file rebuilds it from the ranges the folder's copy
shares (vsync.model.rebuild, vsync.store.rangecopy), for every command that goes back,
and never takes a byte from a copy that changed behind the stat cache's back.

The stat cache trusts an entry only when the file was last modified 2 s before it was
hashed (the racy-git rule); the in-process tests shorten that window to nothing
(``RACY_NS`` = 0) so that a file committed a moment ago counts as known. The CLI tests
wait out the real window instead.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import VSYNC, racy_wait, run_vsync

from vsync.errors import UncommittedChanges
from vsync.model import statcache
from vsync.model.folder_scan import MODE_FILE
from vsync.model.gitdb import ObjectReader
from vsync.model.ingest import Ingester
from vsync.model.manifest import Manifest
from vsync.model.materialize import FolderTemps
from vsync.model.rebuild import Current, CurrentChanged, pieces, rebuild_file
from vsync.model.repository import Repository
from vsync.model.snapshot import flatten_commit
from vsync.model.statcache import StatCache, stat_key
from vsync.ops.checkout import checkout
from vsync.ops.commit import commit
from vsync.ops.restore import restore
from vsync.ops.revert import revert_to
from vsync.ops.status import status
from vsync.ops.undo import undo
from vsync.ops.undo_journal import checkout_recorded
from vsync.store import faults
from vsync.store.chunkstore import ChunkStore
from vsync.store.rangecopy import RangeCopier, SourceTooShort

KiB = 1024
MiB = 1024 * KiB
SIZE = 2 * MiB  # over REUSE_MIN, about 500 chunks with SMALL_CHUNKS
SMALL_CHUNKS = {"minSize": 1024, "avgSize": 4096, "maxSize": 16384}

Files = dict[str, bytes]


def _warn(_msg: str) -> None:
    pass


def _small_chunks(control: Path) -> None:
    config = control / "config"
    text = config.read_text()
    for key, size in SMALL_CHUNKS.items():
        text = re.sub(rf"{key} = \d+", f"{key} = {size}", text)
    config.write_text(text)


def _hashes(root: Path) -> dict[str, str]:
    """sha256 of every file in the folder (the control folder left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".vsync"]
        for name in filenames:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _expected(files: Files) -> dict[str, str]:
    return {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repository]:
    monkeypatch.setattr(statcache, "RACY_NS", 0)
    made = Repository.init(tmp_path / "w")
    _small_chunks(made.control)
    made.close()
    opened = Repository(made.control, made.require_worktree())
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def points(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Callable[[], object]]]:
    """Fault points reached in this process: name -> actions run there (each once)."""
    reached: dict[str, list[Callable[[], object]]] = {}
    real = faults.point

    def point(name: str) -> None:
        actions = reached.setdefault(name, [])
        reached.setdefault(f"count:{name}", []).append(lambda: None)
        while actions:
            actions.pop()()
        real(name)

    monkeypatch.setattr(faults, "point", point)
    return reached


def _rebuilt(points: dict[str, list[Callable[[], object]]]) -> int:
    return len(points.get("count:file-rebuilt", []))


def _set_folder(root: Path, files: Files) -> None:
    for path, data in files.items():
        (root / path).write_bytes(data)
    for entry in root.iterdir():
        if entry.is_file() and entry.name not in files:
            entry.unlink()


def _commit(repo: Repository, files: Files, message: str) -> str:
    _set_folder(repo.require_worktree(), files)
    made = commit(repo, message, _warn).commit_id
    assert made is not None
    return made.decode()


def _random(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# Each edit turns version one of big.bin into version two.
EDITS: dict[str, Callable[[bytes], bytes]] = {
    "start": lambda d: b"0123456789" + d[10:],
    "middle": lambda d: d[: SIZE // 2] + b"0123456789" + d[SIZE // 2 + 10 :],
    "end": lambda d: d[:-10] + b"0123456789",
    "insertion": lambda d: d[: SIZE // 3] + b"0123456789" + d[SIZE // 3 :],
    "truncation": lambda d: d[: SIZE - 300 * KiB],
    "growth": lambda d: d + _random(9, 300 * KiB),
    "two-edits": lambda d: d[:1000] + b"x" * 10 + d[1010 : SIZE - 5000] + b"y" + d[SIZE - 4999 :],
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_rebuilt_file_is_byte_identical_both_ways(
    repo: Repository, points: dict[str, list[Callable[[], object]]], edit: str
) -> None:
    one_big = _random(1, SIZE)
    one: Files = {"big.bin": one_big, "small.txt": b"one\n"}
    two: Files = {"big.bin": EDITS[edit](one_big), "small.txt": b"two\n"}
    c1 = _commit(repo, one, "one")
    c2 = _commit(repo, two, "two")
    root = repo.require_worktree()

    checkout(repo, c1, False, _warn)
    assert _hashes(root) == _expected(one)
    assert _rebuilt(points) == 1  # big.bin from the folder's copy; small.txt from the store

    checkout(repo, c2, False, _warn)  # and forward again, from the file just rebuilt
    assert _hashes(root) == _expected(two)
    assert _rebuilt(points) == 2


def _go_back(repo: Repository, command: str, one: Files, two: Files) -> Callable[[], object]:
    """The folder at ``two``; returns ``command`` bringing ``one`` back."""
    if command == "undo":
        c2 = _commit(repo, two, "two")
        _commit(repo, one, "one")
        checkout_recorded(repo, c2, False, _warn)
        # The file the checkout just wrote is racy in the stat cache (written after the
        # time its entry records): the next command hashes it once, as a status would
        # first. The goback benchmark runs that status untimed; so does this.
        status(repo, _warn)
        return lambda: undo(repo, _warn)
    c1 = _commit(repo, one, "one")
    _commit(repo, two, "two")
    if command == "checkout":
        return lambda: checkout(repo, c1, False, _warn)
    if command == "checkout-recorded":  # what `vsync checkout` runs: the undo journal too
        return lambda: checkout_recorded(repo, c1, False, _warn)
    if command == "restore":
        return lambda: restore(repo, ["big.bin"], c1, False, _warn)
    return lambda: revert_to(repo, c1, _warn)


GO_BACK = ["checkout", "checkout-recorded", "restore", "revert-to", "undo"]


@dataclass
class Traffic:
    """Bytes that went through the three ways a command can take a file's content."""

    hashed: int = 0  # read and hashed by an Ingester (a scan that could not trust the cache)
    from_store: int = 0  # chunk bytes read from the chunk store
    copiers: list[RangeCopier] = field(default_factory=list)

    @property
    def from_copy(self) -> int:
        """Bytes the range copier took from the folder's copy (copied or cloned)."""
        return sum(c.copied + c.cloned for c in self.copiers)

    def totals(self) -> tuple[int, int, int]:
        return self.hashed, self.from_store, self.from_copy


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> Traffic:
    """Counts, in this process, the bytes hashed, read from the store and range-copied."""
    seen = Traffic()
    real_ingest, real_read, real_init = Ingester.ingest, ChunkStore.read, RangeCopier.__init__

    def ingest(self: Ingester, *args: Any, **kwargs: Any) -> Manifest:
        manifest = real_ingest(self, *args, **kwargs)
        seen.hashed += manifest.size
        return manifest

    def read(self: ChunkStore, cid: bytes) -> bytes:
        data = real_read(self, cid)
        seen.from_store += len(data)
        return data

    def init(self: RangeCopier, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        seen.copiers.append(self)

    monkeypatch.setattr(Ingester, "ingest", ingest)
    monkeypatch.setattr(ChunkStore, "read", read)
    monkeypatch.setattr(RangeCopier, "__init__", init)
    return seen


@pytest.mark.parametrize("command", GO_BACK)
def test_every_command_that_goes_back_costs_the_changed_chunks_not_the_file(
    repo: Repository,
    points: dict[str, list[Callable[[], object]]],
    traffic: Traffic,
    command: str,
) -> None:
    """Issue 14: every command that goes back a version of a large file edited in a
    few bytes rebuilds it: only the changed chunks come from the store, the rest from
    the folder's copy by range copy, and nothing is hashed. Work that reads the whole
    file (a scan that hashes it, an undo-journal copy, the file written whole) shows
    here without timing anything."""
    one_big = _random(2, SIZE)
    one: Files = {"big.bin": one_big}
    two: Files = {"big.bin": EDITS["middle"](one_big)}
    run = _go_back(repo, command, one, two)
    rebuilt = _rebuilt(points)
    before = traffic.totals()
    run()
    assert _hashes(repo.require_worktree()) == _expected(one)
    assert _rebuilt(points) == rebuilt + 1
    hashed, from_store, from_copy = (n - b for n, b in zip(traffic.totals(), before, strict=True))
    changed = 4 * SMALL_CHUNKS["maxSize"]  # the chunks around the edit, with room to spare
    assert hashed == 0
    assert from_store <= changed
    assert from_copy >= SIZE - changed


def test_a_checkout_reads_the_folder_once_and_asks_the_store_about_it_once(
    repo: Repository,
    points: dict[str, list[Callable[[], object]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`vsync checkout` records the folder for undo, then plans from that same reading
    (a second walk of the folder cost 0.17 s CPU in one of 20,000 files); which of its
    files are already in history is one presence set, not a lookup per file (each one
    searched every pack: 0.4 s there)."""
    one_big = _random(6, SIZE)
    small = {f"f{i:03}.txt": f"{i}\n".encode() for i in range(200)}
    c1 = _commit(repo, {**small, "big.bin": one_big}, "one")
    _commit(repo, {**small, "big.bin": EDITS["middle"](one_big)}, "two")
    asked: list[bytes] = []
    real_has = ObjectReader.has

    def has(self: ObjectReader, oid: bytes) -> bool:
        asked.append(oid)
        return real_has(self, oid)

    monkeypatch.setattr(ObjectReader, "has", has)
    scans = len(points.get("count:folder-scanned", []))
    checkout_recorded(repo, c1, False, _warn)
    assert (repo.require_worktree() / "big.bin").read_bytes() == one_big
    assert len(points["count:folder-scanned"]) == scans + 1
    assert len(asked) < len(small) // 10


def _edit_behind_the_cache(path: Path, at: int, data: bytes) -> None:
    """Change bytes in place, the size kept and the mtime put back as it was."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("when", ["file-rebuilding", "file-rebuilt"])
def test_a_copy_changed_while_it_is_read_from_is_never_used(
    repo: Repository, points: dict[str, list[Callable[[], object]]], when: str
) -> None:
    """An edit to the folder's copy while the new file is built from it (same size,
    mtime put back) stops the command: the new file is not put in place, and the
    edit is there as the user made it."""
    one_big = _random(3, SIZE)
    c1 = _commit(repo, {"big.bin": one_big}, "one")
    two_big = EDITS["start"](one_big)
    _commit(repo, {"big.bin": two_big}, "two")
    big = repo.require_worktree() / "big.bin"
    edited = two_big[: SIZE - 100] + b"E" * 10 + two_big[SIZE - 90 :]
    points.setdefault(when, []).append(lambda: _edit_behind_the_cache(big, SIZE - 100, b"E" * 10))
    with pytest.raises(UncommittedChanges, match="while vsync was working"):
        checkout(repo, c1, False, _warn)
    assert big.read_bytes() == edited
    assert sorted(p.name for p in big.parent.iterdir()) == [".vsync", "big.bin"]  # no temp left


def test_a_copy_changed_before_the_command_is_hashed_again_not_trusted(
    repo: Repository, points: dict[str, list[Callable[[], object]]]
) -> None:
    """Changed behind the cache's back before the command (same size, mtime put back):
    the scan sees the ctime moved and hashes the file, so it is uncommitted work;
    with --force the old version is written whole, nothing taken from the edited copy."""
    one_big = _random(4, SIZE)
    c1 = _commit(repo, {"big.bin": one_big}, "one")
    _commit(repo, {"big.bin": EDITS["end"](one_big)}, "two")
    big = repo.require_worktree() / "big.bin"
    _edit_behind_the_cache(big, 1000, b"E" * 10)
    with pytest.raises(UncommittedChanges, match="uncommitted changes"):
        checkout(repo, c1, False, _warn)
    checkout(repo, c1, True, _warn)
    assert big.read_bytes() == one_big
    assert _rebuilt(points) == 0


@pytest.mark.parametrize("when", ["file-rebuilding", "file-rebuilt"])
def test_the_rebuild_itself_checks_its_source_after_copying(
    repo: Repository, points: dict[str, list[Callable[[], object]]], when: str
) -> None:
    """rebuild_file alone (without the folder writer's own last look at the target):
    an edit to the source while it is read from (same size, mtime put back) is
    CurrentChanged, and the target keeps the edit."""
    one_big = _random(7, SIZE)
    c1 = _commit(repo, {"big.bin": one_big}, "one")
    _commit(repo, {"big.bin": EDITS["insertion"](one_big)}, "two")
    big = repo.require_worktree() / "big.bin"
    db = repo.gitdb
    new = db.manifest(flatten_commit(db, c1.encode())["big.bin"][1])
    cached = StatCache(repo.control).lookup("big.bin", os.lstat(big))
    assert cached is not None
    current = Current(db.manifest(cached), stat_key(os.lstat(big)))
    points.setdefault(when, []).append(lambda: _edit_behind_the_cache(big, SIZE - 50, b"E"))
    edited = bytearray(big.read_bytes())
    edited[SIZE - 50] = ord("E")
    temps = FolderTemps(repo.control)
    with pytest.raises(CurrentChanged):
        rebuild_file(repo.chunks, current, new, big, MODE_FILE, temps)
    temps.done()
    assert big.read_bytes() == edited
    assert sorted(p.name for p in big.parent.iterdir()) == [".vsync", "big.bin"]


# -- the pieces and the range copier ----------------------------------------------------


def _manifest(*chunks: tuple[bytes, int]) -> Manifest:
    return Manifest(sum(n for _, n in chunks), chunks)


def test_pieces_join_neighbouring_chunks_and_take_the_rest_from_the_store() -> None:
    a, b, c, d, z = (bytes([i]) * 32 for i in range(5))
    old = _manifest((a, 10), (b, 20), (c, 30), (d, 40))
    # b, c in order: one run; z new; a moved; d twice
    new = _manifest((b, 20), (c, 30), (z, 5), (a, 10), (d, 40), (d, 40))
    assert list(pieces(old, new)) == [
        (10, 50, b""),
        (-1, 5, z),
        (0, 10, b""),
        (60, 40, b""),
        (60, 40, b""),
    ]


def test_pieces_never_copy_a_chunk_whose_length_disagrees() -> None:
    a = b"a" * 32
    assert list(pieces(_manifest((a, 10)), _manifest((a, 11)))) == [(-1, 11, a)]


def _fds(tmp_path: Path, data: bytes) -> tuple[int, int]:
    (tmp_path / "src").write_bytes(data)
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    return src, dst


@pytest.mark.parametrize("way", ["clone-or-copy", "copy_file_range", "pread"])
def test_the_range_copier_copies_exactly_the_ranges_asked(tmp_path: Path, way: str) -> None:
    data = _random(5, 3 * MiB + 123)
    src, dst = _fds(tmp_path, data)
    try:
        copier = RangeCopier(src, dst, clone=way == "clone-or-copy")
        copier.can_copy_range = way != "pread"
        ranges = [(0, 8192), (8192 + 4096, 2 * MiB), (100, 7), (3 * MiB, 123)]
        pos = 0
        expected = b""
        for at, n in ranges:
            copier.copy(at, pos, n)
            pos += n
            expected += data[at : at + n]
        assert (tmp_path / "dst").read_bytes() == expected
        assert copier.cloned + copier.copied == len(expected)
    finally:
        os.close(src)
        os.close(dst)


def test_without_clones_the_destination_is_allocated_up_front(tmp_path: Path) -> None:
    """ext4 (the test's temp folder): no clones, so reserve() allocates the blocks,
    and renaming the finished file over the old one has no delayed allocation to force."""
    src, dst = _fds(tmp_path, b"x" * 4096)
    try:
        copier = RangeCopier(src, dst)
        if copier.can_clone:
            pytest.skip("the temp folder's file system clones ranges")
        copier.reserve(8 * MiB)
        st = os.fstat(dst)
        assert st.st_size == 8 * MiB and st.st_blocks * 512 >= 8 * MiB
    finally:
        os.close(src)
        os.close(dst)


def test_the_range_copier_stops_when_the_source_is_shorter(tmp_path: Path) -> None:
    src, dst = _fds(tmp_path, b"x" * 1000)
    try:
        with pytest.raises(SourceTooShort):
            RangeCopier(src, dst).copy(500, 0, 1000)
    finally:
        os.close(src)
        os.close(dst)


# -- through the CLI: a real wait for the racy window, a real kill ----------------------


def _cli_scene(work: Path) -> tuple[bytes, bytes]:
    """A folder whose big.bin is version two, known to the stat cache; returns (one, two)."""
    work.mkdir()
    run_vsync("init", cwd=work)
    _small_chunks(work / ".vsync")
    one = _random(6, SIZE)
    two = EDITS["middle"](one)
    (work / "big.bin").write_bytes(one)
    run_vsync("commit", "-q", "-m", "one", cwd=work)
    (work / "big.bin").write_bytes(two)
    run_vsync("commit", "-q", "-m", "two", cwd=work)
    time.sleep(racy_wait())  # out of the racy window: the next hash counts
    run_vsync("status", cwd=work)
    return one, two


@pytest.mark.parametrize("point", ["file-rebuilding", "file-rebuilt"])
def test_a_checkout_killed_mid_rebuild_leaves_the_old_file(tmp_path: Path, point: str) -> None:
    work = tmp_path / "w"
    one, two = _cli_scene(work)
    trace = tmp_path / "trace"
    killed = run_vsync(
        "checkout", "HEAD~1", cwd=work, check=False,
        env={"VSYNC_FAULTS": f"checkout/{point}=kill", "VSYNC_FAULTS_TRACE": str(trace)},
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert f"checkout {point}" in trace.read_text()
    assert (work / "big.bin").read_bytes() == two
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".vsync-tmp-")]
    assert len(leftovers) == 1  # the half-built file, listed in folder-temps
    run_vsync("checkout", "HEAD~1", cwd=work, env={"VSYNC_FAULTS_TRACE": str(trace)})
    assert (work / "big.bin").read_bytes() == one
    assert sorted(p.name for p in work.iterdir()) == [".vsync", "big.bin"]
    assert trace.read_text().count("checkout file-rebuilt") == (2 if point == "file-rebuilt" else 1)


def test_an_edit_during_a_cli_rebuild_stops_it_and_is_kept(tmp_path: Path) -> None:
    work = tmp_path / "w"
    _one, two = _cli_scene(work)
    trace = tmp_path / "trace"
    env = dict(os.environ, VSYNC_AUTHOR_NAME="T", VSYNC_AUTHOR_EMAIL="t@example.com")
    env.update(VSYNC_FAULTS="checkout/file-rebuilding=sleep:3", VSYNC_FAULTS_TRACE=str(trace))
    proc = subprocess.Popen(
        [*VSYNC, "checkout", "HEAD~1"], cwd=work, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while "file-rebuilding" not in (trace.read_text() if trace.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        _edit_behind_the_cache(work / "big.bin", 10, b"E" * 10)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "'big.bin' changed while vsync was working on it" in err
    assert (work / "big.bin").read_bytes() == two[:10] + b"E" * 10 + two[20:]
