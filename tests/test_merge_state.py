"""The merge state record, ``merge --abort`` and ``resolve``, on real repositories."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from merge_repo import History, Spec, folder_spec

from vsync.errors import (
    DamagedRepository,
    StoppedError,
    UncommittedChanges,
    UnsupportedFormat,
    UsageError,
)
from vsync.model.ingest import Ingester
from vsync.ops.merge import MergeState, PathState, RepoContent, abort, resolve, status_codes
from vsync.ops.merge.undoable import changed_since, save_conflict
from vsync.ops.status import status

B0, B1, B2 = b"\0\1base", b"\0\1ours", b"\0\1theirs"


def F(content: bytes | str, exe: bool = False) -> tuple[str, bytes | str, bool]:
    return ("file", content.encode() if isinstance(content, str) else content, exe)


BASE: Spec = {
    "t.txt": F("a\nb\nc\n"),
    "bin.dat": F(B0),
    "md.txt": F("m\n"),
    "dm.txt": F("d\n"),
    "clean.txt": F("c\n"),
    "gone/g.txt": F("g\n"),
    "notes.txt": F("n\n"),
    "run.sh": F("echo\n", True),
}
OURS: Spec = {
    **BASE,
    "t.txt": F("a\nB ours\nc\n"),
    "bin.dat": F(B1),
    "md.txt": F("m ours\n"),
    "box": F("ours box\n"),
}
del OURS["dm.txt"]
THEIRS: Spec = {
    **BASE,
    "t.txt": F("a\nB theirs\nc\n"),
    "bin.dat": F(B2),
    "dm.txt": F("d theirs\n"),
    "clean.txt": F("c theirs\n"),
    "run.sh": F("echo\n", False),
    "box/inner.txt": F("i\n"),
    "sub/deep/new.txt": F("new\n"),
    "ln": ("link", "clean.txt", False),
}
del THEIRS["md.txt"]
del THEIRS["gone/g.txt"]
CONFLICTS = [
    ("AU", "box"),
    ("UU", "bin.dat"),
    ("DU", "dm.txt"),
    ("UD", "md.txt"),
    ("UU", "t.txt"),
]


class Setup:
    def __init__(self, root: Path) -> None:
        self.h = History(root)
        self.base = self.h.commit(BASE, [], "basehost")
        self.theirs = self.h.commit(THEIRS, [self.base], "theirhost")
        self.ours = self.h.commit(OURS, [self.base], "ourhost")

    @property
    def root(self) -> Path:
        return self.h.root

    def state(self) -> MergeState:
        state = MergeState.load(self.h.repo)
        assert state is not None
        return state


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path / "work")
    try:
        yield s
    finally:
        s.h.close()


@pytest.fixture
def merged(setup: Setup) -> Setup:
    setup.h.merge(setup.theirs)
    return setup


# -- the record format ----------------------------------------------------------------


def sample_state(control: Path) -> MergeState:
    e1, e2 = (0o100644, b"a" * 40), (0o120000, b"b" * 40)
    state = MergeState(control, b"1" * 40, b"2" * 40, [b"3" * 40, b"4" * 40])
    state.labels = ("ours (h 1111111111)", "theirs (h 2222222222)", "base (virtual x+y)")
    state.files["dir/é x.txt"] = PathState("dir/é x.txt", "content", "UU", e1, e1, e2, e1)
    state.files["b"] = PathState("b", "binary", "UU", None, e1, e2, e1, "b.conflict-h-1", e2, True)
    state.backups = {"dir/é x.txt": e1, "new": None}
    state.created_dirs = ["dir", "dir/sub"]
    state.kept = [("b", e2)]
    state.started = 1700000000
    return state


def fields(state: MergeState) -> tuple[object, ...]:
    return (
        state.ours,
        state.theirs,
        state.bases,
        state.labels,
        state.files,
        state.backups,
        state.created_dirs,
        state.kept,
        state.started,
    )


def with_record(data: bytes, kind: bytes, payload: bytes) -> bytes:
    """Insert a record before the end record and re-seal the checksum."""
    end = data.rindex(b"E" + struct.pack(">I", 64))
    body = data[:end] + kind + struct.pack(">I", len(payload)) + payload
    digest = hashlib.sha256(body).hexdigest().encode()
    return body + b"E" + struct.pack(">I", len(digest)) + digest


def test_record_round_trip(tmp_path: Path) -> None:
    state = sample_state(tmp_path)
    data = state.to_bytes()
    assert data.startswith(b"VSYNC-MERGESTATE 1\n")
    again = MergeState.from_bytes(tmp_path, data)
    assert fields(again) == fields(state)
    assert again.unresolved() == ["dir/é x.txt"]
    assert again.to_bytes() == data


def test_save_load_clear_on_a_repository(setup: Setup) -> None:
    repo = setup.h.repo
    assert MergeState.load(repo) is None
    state = sample_state(repo.control)
    state.save()
    assert (repo.control / "merge" / "state").is_file()
    assert not (repo.control / "merge" / "state.tmp").exists()
    loaded = MergeState.load(repo)
    assert loaded is not None and fields(loaded) == fields(state)
    loaded.mark_resolved("dir/é x.txt")
    loaded.save()
    assert MergeState.load(repo).unresolved() == []  # type: ignore[union-attr]
    loaded.clear()
    assert MergeState.load(repo) is None
    assert not (repo.control / "merge").exists()


def test_unknown_optional_record_is_skipped(tmp_path: Path) -> None:
    state = sample_state(tmp_path)
    data = with_record(state.to_bytes(), b"z", b"something\0a later vsync added")
    assert fields(MergeState.from_bytes(tmp_path, data)) == fields(state)


def test_unknown_mandatory_record_is_refused(tmp_path: Path) -> None:
    data = with_record(sample_state(tmp_path).to_bytes(), b"Z", b"must understand")
    with pytest.raises(UnsupportedFormat, match="type 'Z'"):
        MergeState.from_bytes(tmp_path, data)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    data = (
        sample_state(tmp_path).to_bytes().replace(b"VSYNC-MERGESTATE 1\n", b"VSYNC-MERGESTATE 2\n")
    )
    with pytest.raises(UnsupportedFormat, match="format 2, newer"):
        MergeState.from_bytes(tmp_path, data)


@pytest.mark.parametrize("damage", ["flip", "truncate", "trailing", "header"])
def test_damaged_record_file_is_refused(tmp_path: Path, damage: str) -> None:
    data = bytearray(sample_state(tmp_path).to_bytes())
    if damage == "flip":
        data[30] ^= 1
    elif damage == "truncate":
        del data[-10:]
    elif damage == "trailing":
        data += b"x"
    else:
        data[:5] = b"NOPE!"
    with pytest.raises(DamagedRepository):
        MergeState.from_bytes(tmp_path, bytes(data))


# -- apply, record, abort -------------------------------------------------------------------


def test_conflicted_merge_is_recorded(merged: Setup) -> None:
    state = merged.state()
    assert status_codes(state) == sorted(CONFLICTS, key=lambda c: c[1])
    assert state.ours == merged.ours and state.theirs == merged.theirs
    assert state.bases == [merged.base]
    assert state.backups["clean.txt"] is not None and state.backups["ln"] is None
    assert "sub" in state.created_dirs and "sub/deep" in state.created_dirs
    assert "box" in state.created_dirs  # a folder where our file was
    disk = folder_spec(merged.root)
    assert disk["clean.txt"] == F("c theirs\n") and disk["run.sh"] == F("echo\n")
    assert "gone/g.txt" not in disk and not (merged.root / "gone").exists()
    assert disk["md.txt"] == F("m ours\n") and disk["dm.txt"] == F("d theirs\n")
    copies = [p for p in disk if ".conflict-" in p]
    assert sorted(p.split(".conflict-")[0] for p in copies) == ["bin", "box"]
    # everything the state names is in the repository
    db = merged.h.repo.gitdb
    assert all(db.has(oid) for oid in state.blob_ids())


def test_abort_restores_the_folder_byte_for_byte(setup: Setup) -> None:
    root = setup.root
    (root / "notes.txt").write_text("my uncommitted edit\n")
    (root / "scratch.tmp").write_bytes(b"\0untracked")
    os.chmod(root / "run.sh", 0o755)
    before = folder_spec(root)
    setup.h.merge(setup.theirs)
    assert folder_spec(root) != before
    result = abort(setup.h.repo)
    assert folder_spec(root) == before
    assert sorted(os.listdir(root)) == sorted([".vsync", *{p.split("/")[0] for p in before}])
    assert MergeState.load(setup.h.repo) is None
    assert "ln" in result.removed and "clean.txt" in result.restored
    codes = status(setup.h.repo, setup.h.warnings.append).entries
    assert codes == [(" M", "notes.txt"), ("??", "scratch.tmp")]


def test_abort_after_resolving_and_editing(merged: Setup) -> None:
    root = merged.root
    (root / "t.txt").write_text("hand-merged\n")
    resolve(merged.h.repo, ["t.txt"], "mark")
    resolve(merged.h.repo, ["bin.dat"], "theirs")
    abort(merged.h.repo)
    assert folder_spec(root) == OURS


def test_merge_refuses_to_overwrite_uncommitted_edits(setup: Setup) -> None:
    (setup.root / "clean.txt").write_text("edited, not committed\n")
    before = folder_spec(setup.root)
    with pytest.raises(UncommittedChanges, match=r"clean\.txt"):
        setup.h.merge(setup.theirs)
    assert folder_spec(setup.root) == before
    assert MergeState.load(setup.h.repo) is None


def test_merge_refuses_an_untracked_file_in_the_way(setup: Setup) -> None:
    (setup.root / "sub").write_text("an untracked file where theirs has a folder\n")
    before = folder_spec(setup.root)
    with pytest.raises(UncommittedChanges, match="'sub'"):
        setup.h.merge(setup.theirs)
    assert folder_spec(setup.root) == before


def test_second_merge_while_one_is_in_progress(merged: Setup) -> None:
    with pytest.raises(StoppedError, match="already in progress"):
        merged.h.merge(merged.theirs)


# -- resolve ----------------------------------------------------------------------------------


def copy_of(root: Path, stem: str) -> list[str]:
    return sorted(p for p in folder_spec(root) if p.startswith(stem + ".conflict-"))


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("ours", "a\nB ours\nc\n"),
        ("theirs", "a\nB theirs\nc\n"),
        ("base", "a\nb\nc\n"),
        ("both", "a\nB ours\nB theirs\nc\n"),
    ],
)
def test_resolve_text(merged: Setup, how: str, expected: str) -> None:
    result = resolve(merged.h.repo, ["t.txt"], how)
    assert result.resolved == ["t.txt"]
    assert (merged.root / "t.txt").read_text() == expected
    assert "t.txt" not in merged.state().unresolved()
    assert ("UU", "t.txt") not in status_codes(merged.state())


def test_keep_both_keeps_the_merged_text_and_both_sides_only_where_they_conflict(
    tmp_path: Path,
) -> None:
    lines = [f"line {i}\n" for i in range(1, 9)]
    base = "".join(lines)
    ours = base.replace("line 2\n", "line 2 ours only\n").replace("line 6\n", "six ours\n")
    theirs = base.replace("line 6\n", "six theirs\n").replace("line 8\n", "line 8 theirs only\n")
    added_ours = "head\nshared\nadded by ours\ntail\n"
    added_theirs = "head\nshared\nadded by theirs\ntail\n"
    h = History(tmp_path / "work")
    try:
        b = h.commit({"t.txt": F(base)}, [], "basehost")
        t = h.commit({"t.txt": F(theirs), "new.txt": F(added_theirs)}, [b], "theirhost")
        h.commit({"t.txt": F(ours), "new.txt": F(added_ours)}, [b], "ourhost")
        h.merge(t)
        assert (h.root / "new.txt").read_text().startswith("head\nshared\n<<<<<<< ")
        resolve(h.repo, ["t.txt", "new.txt"], "both")
        expected = ours.replace("six ours\n", "six ours\nsix theirs\n")
        expected = expected.replace("line 8\n", "line 8 theirs only\n")
        assert (h.root / "t.txt").read_text() == expected
        both_added = "head\nshared\nadded by ours\nadded by theirs\ntail\n"
        assert (h.root / "new.txt").read_text() == both_added
    finally:
        h.close()


def test_resolve_mark_keeps_the_file_as_it_is(merged: Setup) -> None:
    (merged.root / "t.txt").write_text("by hand\n")
    resolve(merged.h.repo, ["t.txt"], "mark")
    assert (merged.root / "t.txt").read_text() == "by hand\n"
    assert merged.state().unresolved() == ["bin.dat", "box", "dm.txt", "md.txt"]


def test_resolve_binary(merged: Setup) -> None:
    root = merged.root
    assert len(copy_of(root, "bin")) == 1
    resolve(merged.h.repo, ["bin.dat"], "both")
    assert (root / "bin.dat").read_bytes() == B1 and len(copy_of(root, "bin")) == 1
    merged.h.repo.close()
    setup_again = MergeState.load(merged.h.repo)
    assert setup_again is not None and "bin.dat" not in setup_again.unresolved()
    resolve(merged.h.repo, ["bin.dat"], "theirs")
    assert (root / "bin.dat").read_bytes() == B2 and copy_of(root, "bin") == []


def test_resolve_modify_delete_and_delete_modify(merged: Setup) -> None:
    root = merged.root
    resolve(merged.h.repo, ["md.txt"], "theirs")  # theirs deleted it
    assert not (root / "md.txt").exists()
    resolve(merged.h.repo, ["dm.txt"], "ours")  # ours deleted it
    assert not (root / "dm.txt").exists()


def test_resolve_file_folder(merged: Setup) -> None:
    root = merged.root
    with pytest.raises(UsageError, match="is a folder now"):
        resolve(merged.h.repo, ["box"], "ours")  # the file is ours, the folder is in the way
    assert len(copy_of(root, "box")) == 1
    resolve(merged.h.repo, ["box"], "theirs")  # theirs has the folder: drop our file's copy
    assert copy_of(root, "box") == [] and (root / "box" / "inner.txt").is_file()


def test_resolve_keeps_what_it_replaces(merged: Setup) -> None:
    repo = merged.h.repo
    (merged.root / "t.txt").write_text("half-done manual merge\n")
    resolve(repo, ["t.txt"], "theirs")
    kept = [e for p, e in merged.state().kept if p == "t.txt"]
    assert kept, "the replaced edit must be named in the merge state"
    with Ingester(repo.config.chunker_params(), repo.config.compression_level()) as ing:
        texts = [RepoContent(repo, ing).read(e) for e in kept]
    assert b"half-done manual merge\n" in texts


def test_resolve_keeps_a_symlink_it_replaces(merged: Setup) -> None:
    repo = merged.h.repo
    (merged.root / "t.txt").unlink()
    os.symlink("my notes elsewhere", merged.root / "t.txt")  # a target that does not exist
    resolve(repo, ["t.txt"], "theirs")
    kept = [e for p, e in merged.state().kept if p == "t.txt"]
    assert [mode for mode, _oid in kept] == [0o120000]
    with Ingester(repo.config.chunker_params(), repo.config.compression_level()) as ing:
        assert RepoContent(repo, ing).read(kept[0]) == b"my notes elsewhere"


def test_an_edit_of_a_path_left_absent_is_no_change(merged: Setup) -> None:
    repo = merged.h.repo
    resolve(repo, ["md.txt"], "theirs")  # theirs deleted it: the path is absent now
    undo = save_conflict(repo, "md.txt", "edit")
    assert [s.kind for s in undo.saved] == ["absent"]
    assert not changed_since(repo, undo.saved[0])
    (merged.root / "md.txt").write_text("written by the editor\n")
    assert changed_since(repo, undo.saved[0])


def test_resolve_errors(setup: Setup, merged: Setup) -> None:
    with pytest.raises(UsageError, match="not a conflicted path"):
        resolve(merged.h.repo, ["clean.txt"], "ours")
    with pytest.raises(UsageError, match="unknown resolution"):
        resolve(merged.h.repo, ["t.txt"], "mine")
    abort(merged.h.repo)
    with pytest.raises(UsageError, match="no merge is in progress"):
        resolve(merged.h.repo, ["t.txt"], "ours")


def test_all_resolved_then_commit_concludes(merged: Setup) -> None:
    repo = merged.h.repo
    resolve(repo, ["t.txt", "md.txt", "dm.txt"], "theirs")
    resolve(repo, ["bin.dat"], "ours")
    resolve(repo, ["box"], "theirs")
    state = merged.state()
    assert state.unresolved() == [] and status_codes(state) == []
    disk = folder_spec(merged.root)
    assert not [p for p in disk if ".conflict-" in p]
    assert disk["t.txt"] == F("a\nB theirs\nc\n") and disk["bin.dat"] == F(B1)


def test_resolve_base_with_a_virtual_base(tmp_path: Path) -> None:
    """Criss-cross: the base side of a conflict is the virtual base's merged text."""
    h = History(tmp_path / "work")
    try:
        base = h.commit({"f": F("1\n2\n3\n")}, [], "h")
        a1 = h.commit({"f": F("1a\n2\n3\n")}, [base], "h")
        b1 = h.commit({"f": F("1\n2\n3b\n")}, [base], "h")
        theirs = h.commit({"f": F("1a\n2 theirs\n3b\n")}, [b1, a1], "theirhost")
        h.commit({"f": F("1a\n2 ours\n3b\n")}, [a1, b1], "ourhost")
        plan, _ = h.merge(theirs)
        assert plan.labels.base.startswith("base (virtual ")
        text = (h.root / "f").read_text()
        assert "||||||| base (virtual " in text and "\n2\n=======" in text
        resolve(h.repo, ["f"], "base")
        assert (h.root / "f").read_text() == "1a\n2\n3b\n"
    finally:
        h.close()


def test_clean_merge_keeps_unrelated_uncommitted_edits(tmp_path: Path) -> None:
    h = History(tmp_path / "work")
    try:
        base = h.commit({"a": F("a\n"), "b": F("b\n")}, [], "h")
        theirs = h.commit({"a": F("a theirs\n"), "b": F("b\n")}, [base], "theirhost")
        ours = h.commit({"a": F("a\n"), "b": F("b\n"), "c": F("c\n")}, [base], "ourhost")
        (h.root / "b").write_text("b, not committed\n")
        plan, outcome = h.merge(theirs)
        assert plan.clean and outcome.written == ["a"]
        merge_id = h.commit_merge(plan)
        assert h.repo.gitdb.commit(merge_id).parents == (ours, theirs)
        assert h.flat(merge_id)["b"] == h.flat(base)["b"]
        assert (h.root / "a").read_text() == "a theirs\n"
        assert status(h.repo, h.warnings.append).entries == [(" M", "b")]
    finally:
        h.close()
