"""``vsync restore`` and ``vsync checkout`` through the real CLI, on real files."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

from conftest import Run, snapshot_tree
from dulwich.objects import Commit
from dulwich.repo import Repo as GitRepo

from vsync.model.statcache import StatCache

Vsync = Callable[..., Run]
BRANCH = b"refs/heads/main"


def write(root: Path, rel: str, data: bytes | str, exec_bit: bool = False) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o755 if exec_bit else 0o644)
    return path


def git(work: Path) -> GitRepo:
    return GitRepo(str(work / ".vsync" / "git"))


def head(work: Path) -> bytes:
    g = git(work)
    try:
        return g.refs[BRANCH]
    finally:
        g.close()


def commit_obj(work: Path, oid: bytes) -> Commit:
    g = git(work)
    try:
        obj = g.object_store[oid]
        assert isinstance(obj, Commit)
        return obj
    finally:
        g.close()


def porcelain(vsync: Vsync) -> list[str]:
    return vsync("status", "--porcelain").stdout.splitlines()


def one_error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


# -- restore -----------------------------------------------------------------------


def test_restore_refuses_uncommitted_edit_then_force_overwrites(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "committed\n")
    vsync("commit", "-m", "one")
    write(work, "a.txt", "my precious edit\n")

    run = vsync("restore", "a.txt", check=False)
    assert run.returncode == 1
    line = one_error_line(run)
    assert "a.txt" in line and "commit them first or use --force" in line
    assert (work / "a.txt").read_text() == "my precious edit\n"

    out = vsync("restore", "a.txt", "--force").stdout
    assert out.strip() == "Restored 1 file"
    assert (work / "a.txt").read_text() == "committed\n"
    assert porcelain(vsync) == []


def test_restore_overwrites_an_edit_whose_content_is_recorded(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "version A\n")
    write(work, "b.txt", "version B\n")
    vsync("commit", "-m", "one")
    write(work, "a.txt", "version B\n")  # same bytes as b.txt: recoverable from history
    vsync("restore", "a.txt")
    assert (work / "a.txt").read_text() == "version A\n"


def test_restore_deleted_file_keeps_exec_bit(work: Path, vsync: Vsync) -> None:
    write(work, "bin/run.sh", "#!/bin/sh\necho hi\n", exec_bit=True)
    write(work, "bin/other", "other\n")
    vsync("commit", "-m", "one")
    before = snapshot_tree(work)
    (work / "bin" / "run.sh").unlink()

    vsync("restore", "bin/run.sh")
    assert snapshot_tree(work) == before
    assert os.access(work / "bin" / "run.sh", os.X_OK)
    assert porcelain(vsync) == []


def test_restore_records_the_written_file_in_the_stat_cache(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "one\n")
    vsync("commit", "-m", "one")
    (work / "a.txt").unlink()
    vsync("restore", "a.txt")
    g = git(work)
    try:
        tree = g.object_store[commit_obj(work, head(work)).tree]
        blob_id = tree[b"a.txt"][1]
    finally:
        g.close()
    row = StatCache(work / ".vsync").get("a.txt")
    st = os.lstat(work / "a.txt")
    assert row is not None
    assert row[6] == blob_id
    assert (row[0], row[3]) == (st.st_size, st.st_ino)


def test_restore_folder_with_symlinks_and_untracked_files(work: Path, vsync: Vsync) -> None:
    write(work, "d/x.txt", "x\n")
    write(work, "d/sub/y.bin", bytes(range(256)) * 40)
    write(work, "d/sub/tool", "#!/bin/sh\n", exec_bit=True)
    os.symlink("x.txt", work / "d" / "link")
    os.symlink("nowhere/at/all", work / "d" / "dangling")
    write(work, "keep.txt", "outside the folder\n")
    vsync("commit", "-m", "one")
    committed = snapshot_tree(work)

    (work / "d" / "sub" / "y.bin").unlink()
    (work / "d" / "sub" / "tool").chmod(0o644)
    (work / "d" / "link").unlink()
    os.symlink("elsewhere", work / "d" / "dangling.tmp")
    os.replace(work / "d" / "dangling.tmp", work / "d" / "dangling")
    write(work, "d/untracked.txt", "mine\n")
    write(work, "keep.txt", "outside edit\n")

    # the retargeted symlink is not recorded anywhere: refused without --force
    run = vsync("restore", "d", check=False)
    assert run.returncode == 1 and "d/dangling" in run.stderr
    assert os.readlink(work / "d" / "dangling") == "elsewhere"

    out = vsync("restore", "d", "--force").stdout
    assert out.strip() == "Restored 4 files"
    now = snapshot_tree(work)
    assert now.pop("d/untracked.txt") == ("file", b"mine\n", False)
    assert now.pop("keep.txt") == ("file", b"outside edit\n", False)
    committed.pop("keep.txt")
    assert now == committed


def test_restore_from_older_revision_deletes_files_it_lacks(work: Path, vsync: Vsync) -> None:
    write(work, "d/a.txt", "a1\n")
    write(work, "d/b.txt", "b1\n")
    write(work, "top.txt", "t1\n")
    vsync("commit", "-m", "one")
    write(work, "d/a.txt", "a2\n")
    write(work, "d/new/c.txt", "c2\n")
    write(work, "top.txt", "t2\n")
    vsync("commit", "-m", "two")

    out = vsync("restore", "d", "--source", "HEAD~1").stdout
    assert out.strip() == "Restored 1 file, 1 deleted"
    assert (work / "d" / "a.txt").read_text() == "a1\n"
    assert not (work / "d" / "new").exists()  # emptied by the deletion, removed
    assert (work / "top.txt").read_text() == "t2\n"
    assert porcelain(vsync) == [" M d/a.txt", " D d/new/c.txt"]
    assert [c for c in commit_obj(work, head(work)).message.decode().splitlines()] == ["two"]


def test_restore_paths_are_relative_to_the_current_folder(work: Path, vsync: Vsync) -> None:
    write(work, "d/a.txt", "a\n")
    write(work, "a.txt", "top\n")
    vsync("commit", "-m", "one")
    (work / "d" / "a.txt").unlink()
    (work / "a.txt").unlink()
    vsync("restore", "a.txt", cwd=work / "d")
    assert (work / "d" / "a.txt").read_text() == "a\n"
    assert not (work / "a.txt").exists()


def test_restore_path_not_in_revision(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "a\n")
    vsync("commit", "-m", "one")
    write(work, "b.txt", "b\n")
    vsync("commit", "-m", "two")
    run = vsync("restore", "b.txt", "--source", "HEAD~1", check=False)
    assert run.returncode == 2
    assert "'b.txt' does not exist in revision HEAD~1" in one_error_line(run)
    assert (work / "b.txt").read_text() == "b\n"
    run = vsync("restore", "nope/x", check=False)
    assert run.returncode == 2


def test_restore_root_of_an_empty_revision(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "a\n")
    vsync("commit", "-m", "one")
    (work / "a.txt").unlink()
    vsync("commit", "-m", "everything deleted")
    vsync("restore", "a.txt", "--source", "HEAD~1")
    # the root exists in every revision; a.txt is not in HEAD, so it is untracked and stays
    assert vsync("restore", ".").stdout.strip() == "Restored 0 files"
    assert (work / "a.txt").read_text() == "a\n"


def test_restore_unknown_revision(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "a\n")
    vsync("commit", "-m", "one")
    run = vsync("restore", "a.txt", "--source", "HEAD~5", check=False)
    assert run.returncode == 2
    one_error_line(run)


def test_restore_never_writes_through_a_symlinked_folder(
    work: Path, vsync: Vsync, tmp_path: Path
) -> None:
    write(work, "d/x.txt", "inside\n")
    vsync("commit", "-m", "one")
    outside = tmp_path / "outside"
    write(outside, "x.txt/victim", "not yours\n")  # a folder where d/x.txt goes
    write(outside, "other.txt", "not yours either\n")
    (work / "d" / "x.txt").unlink()
    (work / "d").rmdir()
    os.symlink(outside, work / "d")

    run = vsync("restore", "d/x.txt", check=False)  # the symlink 'd' is not recorded
    assert run.returncode == 1 and "'d'" in run.stderr
    assert "victim" not in run.stderr  # what lies behind the symlink is not looked at
    vsync("restore", "d/x.txt", "--force")
    assert not (work / "d").is_symlink()
    assert (work / "d" / "x.txt").read_text() == "inside\n"
    assert snapshot_tree(outside) == {
        "x.txt/victim": ("file", b"not yours\n", False),
        "other.txt": ("file", b"not yours either\n", False),
    }


def flip_first_payload_byte(pack: Path) -> None:
    """Damage the payload of the first chunk record of a pack (see chunkpack.py)."""
    header_size, record_size = 16, 48
    data = bytearray(pack.read_bytes())
    magic, compression = struct.unpack_from(">4sB", data, header_size)
    assert magic == b"CHNK" and compression == 0  # random bytes are stored raw
    data[header_size + record_size + 100] ^= 0x01
    pack.write_bytes(bytes(data))


def test_restore_with_a_damaged_chunk_leaves_the_file_alone(work: Path, vsync: Vsync) -> None:
    chunks = work / ".vsync" / "chunks"
    write(work, "data.bin", os.urandom(4000))
    vsync("commit", "-m", "one")
    (first_pack,) = list(chunks.glob("pack-*.vpk"))
    current = os.urandom(4000)
    write(work, "data.bin", current)
    vsync("commit", "-m", "two")
    flip_first_payload_byte(first_pack)

    run = vsync("restore", "data.bin", "--source", "HEAD~1", check=False)
    assert run.returncode == 3
    assert "damaged" in one_error_line(run)
    assert (work / "data.bin").read_bytes() == current
    assert [p.name for p in work.iterdir() if p.name != ".vsync"] == ["data.bin"]


# -- checkout ----------------------------------------------------------------------


def two_commits(work: Path, vsync: Vsync) -> tuple[dict[str, tuple[str, bytes | str, bool]], ...]:
    write(work, "a.txt", "a1\n")
    write(work, "gone-later.txt", "g\n")
    write(work, "tools/run", "#!/bin/sh\n", exec_bit=True)
    write(work, "deep/er/f.bin", os.urandom(300_000))
    os.symlink("a.txt", work / "ln")
    vsync("commit", "-m", "one")
    first = snapshot_tree(work)
    write(work, "a.txt", "a2\n")
    (work / "gone-later.txt").unlink()
    (work / "tools" / "run").chmod(0o644)
    (work / "deep" / "er" / "f.bin").unlink()
    write(work, "added/new.txt", "new\n")
    (work / "ln").unlink()
    os.symlink("added/new.txt", work / "ln")
    vsync("commit", "-m", "two")
    second = snapshot_tree(work)
    return first, second


def test_checkout_older_commit_keeps_branch_and_history(work: Path, vsync: Vsync) -> None:
    first, second = two_commits(work, vsync)
    c2 = head(work)
    c1 = commit_obj(work, c2).parents[0]

    out = vsync("checkout", "HEAD~1").stdout
    assert out.strip() == f"Checked out {c1.decode()[:10]}: 5 files written, 1 deleted"
    assert snapshot_tree(work) == first
    assert not (work / "added").exists()
    assert head(work) == c2  # the branch did not move
    assert porcelain(vsync) == [
        " M a.txt",
        " D added/new.txt",
        "?? deep/er/f.bin",
        "?? gone-later.txt",
        " M ln",
        " M tools/run",
    ]

    vsync("commit", "-m", "back to one")
    c3 = commit_obj(work, head(work))
    assert c3.parents == [c2]
    assert c3.tree == commit_obj(work, c1).tree
    assert commit_obj(work, c2).parents == [c1]  # old history still there
    vsync("checkout", c2.decode()[:8])
    assert snapshot_tree(work) == second


def test_checkout_refuses_to_clobber_uncommitted_edits(work: Path, vsync: Vsync) -> None:
    first, _second = two_commits(work, vsync)
    write(work, "a.txt", "unsaved work\n")
    before = snapshot_tree(work)

    run = vsync("checkout", "HEAD~1", check=False)
    assert run.returncode == 1
    assert "'a.txt'" in one_error_line(run)
    assert snapshot_tree(work) == before  # nothing at all was changed

    vsync("checkout", "HEAD~1", "--force")
    assert snapshot_tree(work) == first


def test_checkout_back_to_head_needs_no_force(work: Path, vsync: Vsync) -> None:
    _first, second = two_commits(work, vsync)
    vsync("checkout", "HEAD~1")
    vsync("checkout", "HEAD")
    # what only HEAD~1 has goes again: its content is in history, nothing is lost
    assert snapshot_tree(work) == second
    assert vsync("status", "--porcelain").stdout == ""


def test_checkout_leaves_untracked_files_alone(work: Path, vsync: Vsync) -> None:
    first, _second = two_commits(work, vsync)
    write(work, "notes.txt", "untracked\n")
    write(work, "added/mine.txt", "untracked in a folder the checkout empties\n")
    vsync("checkout", "HEAD~1")
    now = snapshot_tree(work)
    assert now.pop("notes.txt") == ("file", b"untracked\n", False)
    assert now.pop("added/mine.txt")[1] == b"untracked in a folder the checkout empties\n"
    assert now == first


def test_checkout_file_folder_shape_changes(work: Path, vsync: Vsync) -> None:
    write(work, "a", "a is a file\n")
    write(work, "b/inner.txt", "b is a folder\n")
    write(work, "b/deeper/x", "x\n")
    vsync("commit", "-m", "one")
    first = snapshot_tree(work)
    (work / "a").unlink()
    write(work, "a/inside.txt", "a is a folder now\n")
    write(work, "a/more/y", "y\n")
    (work / "b" / "inner.txt").unlink()
    (work / "b" / "deeper" / "x").unlink()
    (work / "b" / "deeper").rmdir()
    (work / "b").rmdir()
    write(work, "b", "b is a file now\n")
    vsync("commit", "-m", "two")
    second = snapshot_tree(work)

    vsync("checkout", "HEAD~1")
    assert snapshot_tree(work) == first
    assert (work / "a").is_file() and (work / "b").is_dir()
    vsync("checkout", "HEAD")
    assert snapshot_tree(work) == second

    # an untracked file inside a folder that must become a file: not recorded, so refused
    write(work, "a/more/untracked.txt", "mine\n")
    run = vsync("checkout", "HEAD~1", check=False)
    assert run.returncode == 1 and "a/more/untracked.txt" in run.stderr
    assert (work / "a" / "more" / "untracked.txt").read_text() == "mine\n"
    vsync("checkout", "HEAD~1", "--force")
    assert snapshot_tree(work) == first


def test_checkout_refuses_to_overwrite_an_ignored_file(work: Path, vsync: Vsync) -> None:
    write(work, "out.o", "committed object\n")
    vsync("commit", "-m", "one")
    (work / "out.o").unlink()
    write(work, ".vsyncignore", "*.o\n")
    vsync("commit", "-m", "two")
    write(work, "out.o", "a fresh build, ignored, never committed\n")

    run = vsync("checkout", "HEAD~1", check=False)
    assert run.returncode == 1 and "out.o" in run.stderr
    assert (work / "out.o").read_text() == "a fresh build, ignored, never committed\n"
    assert (work / ".vsyncignore").exists()


def test_checkout_unknown_revision(work: Path, vsync: Vsync) -> None:
    write(work, "a.txt", "a\n")
    vsync("commit", "-m", "one")
    run = vsync("checkout", "nosuchbranch", check=False)
    assert run.returncode == 2
    assert "nosuchbranch" in one_error_line(run)
