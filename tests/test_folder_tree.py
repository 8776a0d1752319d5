"""The commit's folder reader (vsync/model/folder_tree.py) against the reference reader.

A commit reads the folder with ``read_folder_tree``, which keeps the tree ids the
branch has for folders in which nothing changed. Whatever the edits, the tree it
commits must be the tree a full read of the folder gives (``read_working`` with an
empty stat cache, every folder built), and a status right after it is clean.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsync.model import statcache
from vsync.model.folder_snapshot import read_working
from vsync.model.repository import Repository
from vsync.model.snapshot import commit_tree, tree_id_of
from vsync.model.statcache import StatCache
from vsync.ops.commit import commit
from vsync.ops.status import status

FOLDERS = ["", "a", "a/b", "a/b/c", "a-b", "d", "d/e"]
NAMES = ["f", "g.txt", "h", "b", "a.b", "z"]


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSYNC_AUTHOR_NAME", "T")
    monkeypatch.setenv("VSYNC_AUTHOR_EMAIL", "t@example.com")
    monkeypatch.setenv("VSYNC_HOST", "h")


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are trusted as soon as they are recorded (no 2 s wait): every edit here
    makes a new inode of another size, so no edit can hide in a timestamp tick."""
    monkeypatch.setattr(statcache, "RACY_NS", 0)


@pytest.fixture
def scratch() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="vsync-folder-tree-"))
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _write(path: Path, body: bytes, exec_bit: bool = False) -> None:
    """Replace ``path`` through a new file (a new inode, whatever was there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new-tmp")
    tmp.write_bytes(body)
    if exec_bit:
        os.chmod(tmp, 0o755)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(tmp, path)


def _reference_tree(repo: Repository, control: Path) -> bytes:
    """The tree of the folder as a full read with an empty stat cache finds it."""
    with repo.ingester() as ingester:
        state = read_working(repo, ingester, print, None, cache=StatCache(control))
    return tree_id_of(state.flat)


paths = st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES)).map(
    lambda fn: f"{fn[0]}/{fn[1]}" if fn[0] else fn[1]
)
edits = st.lists(
    st.one_of(
        st.tuples(st.just("write"), paths, st.integers(0, 2000)),
        st.tuples(st.just("exec"), paths, st.integers(0, 2000)),
        st.tuples(st.just("link"), paths, st.integers(0, 2000)),
        st.tuples(st.just("delete"), paths, st.just(0)),
        st.tuples(st.just("rmdir"), st.sampled_from(FOLDERS[1:]), st.just(0)),
        st.tuples(st.just("status"), st.just(""), st.just(0)),
        st.tuples(st.just("status"), st.just(""), st.just(0)),
        st.tuples(st.just("commit"), st.just(""), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(start=st.lists(paths, min_size=1, max_size=10), steps=edits)
def test_commit_tree_equals_a_full_rebuild_after_random_edits(
    no_racy_window: None, scratch: Path, start: list[str], steps: list[tuple[str, str, int]]
) -> None:
    case = Path(tempfile.mkdtemp(dir=scratch))
    work, control = case / "work", case / "ref"
    control.mkdir()
    repo = Repository.init(work)
    try:
        for n, path in enumerate(start):
            target = work / path
            if not any(p.is_file() for p in [*target.parents][:-1] if p != work):
                _write(target, b"start %d\n" % n)
        warnings: list[str] = []
        commit(repo, "start", warnings.append)
        for serial, (op, path, size) in enumerate([*steps, ("commit", "", 0)], 1):
            target = work / path
            blocked = any(p.is_file() or p.is_symlink() for p in target.parents if p != work)
            if op in ("write", "exec") and not blocked:
                _write(target, b"x" * size + b"%d\n" % serial, op == "exec")
            elif op == "link" and not blocked:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                tmp = target.with_name(target.name + ".new-tmp")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(f"target-{serial}", tmp)
                os.replace(tmp, target)
            elif op == "delete" and (target.is_file() or target.is_symlink()):
                target.unlink()
            elif op == "rmdir" and target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif op == "status":
                status(repo, warnings.append)
            elif op == "commit":
                commit(repo, f"step {serial}", warnings.append)
                head = repo.head()
                assert head is not None
                shutil.rmtree(control)
                control.mkdir()
                assert commit_tree(repo.gitdb, head) == _reference_tree(repo, control)
                assert status(repo, warnings.append).clean
        assert not warnings
    finally:
        repo.close()


def test_an_unchanged_folder_keeps_its_tree_and_a_changed_one_is_rebuilt(
    no_racy_window: None, scratch: Path
) -> None:
    work = scratch / "work"
    for d in ("one", "two/deep", "three"):
        for i in range(3):
            _write(work / d / f"f{i}", b"%s %d\n" % (d.encode(), i))
    repo = Repository.init(work)
    try:
        commit(repo, "first", print)
        first = repo.head()
        _write(work / "two/deep/f1", b"changed\n")
        (work / "three/f0").unlink()
        commit(repo, "second", print)
        second = repo.head()
        assert first is not None and second is not None and first != second
        one_before = repo.gitdb.tree(commit_tree(repo.gitdb, first)).get(b"one")
        one_after = repo.gitdb.tree(commit_tree(repo.gitdb, second)).get(b"one")
        assert one_before == one_after
        control = scratch / "ref"
        control.mkdir()
        assert commit_tree(repo.gitdb, second) == _reference_tree(repo, control)
    finally:
        repo.close()


def test_a_status_between_the_edit_and_the_commit_changes_nothing_committed(
    no_racy_window: None, scratch: Path
) -> None:
    """The status records the edited file's new id in the stat cache (no clean stamp
    then): the commit must still store it and build the folders above it."""
    work = scratch / "work"
    _write(work / "a/f", b"1\n")
    _write(work / "a/g", b"2\n")
    repo = Repository.init(work)
    try:
        commit(repo, "first", print)
        _write(work / "a/f", b"one\n")
        assert [code for code, _path in status(repo, print).entries] == [" M"]
        result = commit(repo, "second", print)
        assert result.commit_id is not None
        head = repo.head()
        assert head is not None
        control = scratch / "ref"
        control.mkdir()
        assert commit_tree(repo.gitdb, head) == _reference_tree(repo, control)
        assert status(repo, print).clean
    finally:
        repo.close()
