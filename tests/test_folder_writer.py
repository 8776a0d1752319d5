"""The one folder writer (vsync.ops.folder_writer) refuses to lose an edit made between
plan and apply: for each kind of action, and for every command that writes the folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from vsync.errors import UncommittedChanges
from vsync.model.repository import Repository
from vsync.ops.checkout import checkout
from vsync.ops.commit import commit, move_branch
from vsync.ops.folder_writer import Action, FolderWriter
from vsync.ops.merge.integrate import integrate
from vsync.ops.restore import restore
from vsync.ops.revert import revert_to
from vsync.ops.undo import undo
from vsync.ops.undo_journal import checkout_recorded

Files = dict[str, tuple[bytes, int]]  # path -> (content, permission bits)
EDIT = b"an edit made while the command was working\n"

# (the folder before, the version the command brings, the path edited meanwhile)
CASES: dict[str, tuple[Files, Files, str]] = {
    "write": ({"a": (b"two\n", 0o644)}, {"a": (b"one\n", 0o644)}, "a"),
    "remove": ({"a": (b"a\n", 0o644), "b": (b"b\n", 0o644)}, {"a": (b"a\n", 0o644)}, "b"),
    "set-mode": ({"s.sh": (b"x\n", 0o755)}, {"s.sh": (b"x\n", 0o644)}, "s.sh"),
    "appeared": ({"a": (b"a\n", 0o644)}, {"a": (b"a\n", 0o644), "c": (b"c\n", 0o644)}, "c"),
}


def _warn(_msg: str) -> None:
    pass


def _set_folder(root: Path, files: Files) -> None:
    for entry in root.iterdir():
        if entry.name != ".vsync":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for path, (data, perm) in files.items():
        (root / path).write_bytes(data)
        os.chmod(root / path, perm)


def _commit(repo: Repository, files: Files, message: str) -> bytes:
    _set_folder(repo.require_worktree(), files)
    made = commit(repo, message, _warn).commit_id
    assert made is not None
    return made


# Each sets up a folder holding ``two`` and returns the command that brings ``one``.


def _back_to_one(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    c1 = _commit(repo, one, "one").decode()
    _commit(repo, two, "two")
    return lambda: checkout(repo, c1, False, _warn)


def _restore(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    c1 = _commit(repo, one, "one").decode()
    _commit(repo, two, "two")
    return lambda: restore(repo, [""], c1, False, _warn)


def _revert(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    c1 = _commit(repo, one, "one").decode()
    _commit(repo, two, "two")
    return lambda: revert_to(repo, c1, _warn)


def _undo(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    """The folder at ``one``, a checkout of ``two``: undoing it brings ``one`` back."""
    c2 = _commit(repo, two, "two")
    _commit(repo, one, "one")
    checkout_recorded(repo, c2.decode(), False, _warn)
    return lambda: undo(repo, _warn)


def _fast_forward(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    """The branch at ``two``, the next commit ``one``: pull's (and push's) fast-forward."""
    c2 = _commit(repo, two, "two")
    c1 = _commit(repo, one, "one")
    move_branch(repo, c1, c2, "back for the test")
    checkout(repo, c2.decode(), False, _warn)
    return lambda: integrate(repo, c1, "peer", _warn)


def _merge(repo: Repository, one: Files, two: Files) -> Callable[[], object]:
    """Theirs changes ``two`` into ``one``; ours adds an unrelated file: a real merge."""
    base = _commit(repo, two, "base")
    theirs = _commit(repo, one, "theirs")
    move_branch(repo, theirs, base, "back for the test")
    _commit(repo, {**two, "ours.txt": (b"ours\n", 0o644)}, "ours")
    return lambda: integrate(repo, theirs, "peer", _warn)


CALLERS = {
    "checkout": _back_to_one,
    "restore": _restore,
    "revert-to": _revert,
    "undo": _undo,
    "fast-forward": _fast_forward,
    "merge": _merge,
}


@pytest.fixture
def meanwhile(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], object]]:
    """Edits run after the command planned and before the folder writer acts."""
    edits: list[Callable[[], object]] = []
    real = FolderWriter.apply

    def apply(self: FolderWriter, actions: Sequence[Action], prune_emptied: bool = True) -> object:
        while edits:
            edits.pop()()
        return real(self, actions, prune_emptied)

    monkeypatch.setattr(FolderWriter, "apply", apply)
    return edits


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_an_edit_made_between_plan_and_apply_is_never_lost(
    tmp_path: Path, meanwhile: list[Callable[[], object]], caller: str, case: str
) -> None:
    repo = Repository.init(tmp_path / "w")
    try:
        before, brought, edited = CASES[case]
        run = CALLERS[caller](repo, brought, before)
        target = repo.require_worktree() / edited
        meanwhile.append(lambda: target.write_bytes(EDIT))
        with pytest.raises(UncommittedChanges, match="while vsync was working"):
            run()
        assert target.read_bytes() == EDIT
    finally:
        repo.close()


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_without_an_edit_each_command_writes_the_version(
    tmp_path: Path, meanwhile: list[Callable[[], object]], caller: str
) -> None:
    repo = Repository.init(tmp_path / "w")
    one: Files = {"a": (b"one\n", 0o644), "s.sh": (b"x\n", 0o644), "c": (b"c\n", 0o644)}
    two: Files = {"a": (b"two\n", 0o644), "s.sh": (b"x\n", 0o755), "b": (b"b\n", 0o644)}
    try:
        CALLERS[caller](repo, one, two)()
    finally:
        repo.close()
    root = repo.require_worktree()
    assert (root / "a").read_bytes() == b"one\n"
    assert (root / "c").read_bytes() == b"c\n"
    assert not (root / "b").exists()
    assert os.stat(root / "s.sh").st_mode & 0o111 == 0
