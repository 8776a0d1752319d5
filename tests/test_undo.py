"""``vsync undo``, ``vsync reflog`` and ``vsync revert-to`` through the real CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import Run, run_vsync, snapshot_tree
from dulwich.repo import Repo as GitRepo

Vsync = Callable[..., Run]


def head(root: Path) -> str:
    """Where main points ('' for no commit), read with dulwich, not through vsync."""
    g = GitRepo(str(root / ".vsync" / "git"))
    try:
        return g.refs[b"refs/heads/main"].decode()
    except KeyError:
        return ""
    finally:
        g.close()


def status(root: Path) -> list[str]:
    return run_vsync("status", "--porcelain", cwd=root).stdout.splitlines()


def fsck_clean(root: Path) -> None:
    out = run_vsync("fsck", cwd=root, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def reflog(root: Path) -> list[list[str]]:
    out = run_vsync("reflog", "--porcelain", cwd=root).stdout
    return [line.split("\t") for line in out.splitlines()]


def commit(root: Path, message: str, **files: str) -> str:
    for name, text in files.items():
        (root / name).write_text(text)
    run_vsync("commit", "-m", message, cwd=root)
    return head(root)


def test_undo_commit_then_redo(work: Path, vsync: Vsync) -> None:
    first = commit(work, "first", a="one\n")
    second = commit(work, "second", a="two\n", b="bee\n")
    folder = snapshot_tree(work)

    out = vsync("undo")
    assert out.stdout == f"Undid commit {second[:10]} (second): main is back at {first[:10]}\n"
    assert head(work) == first
    assert status(work) == [" M a", "?? b"]  # the changes are uncommitted again
    assert snapshot_tree(work) == folder  # the folder was not touched
    log = reflog(work)
    assert log[0][1:5] == ["branch", "undo", first, second]
    assert log[0][6] == f"undo: commit {second[:10]} (second)"
    fsck_clean(work)

    out = vsync("undo")  # right after an undo: redo
    assert out.stdout.startswith(f"Redid commit {second[:10]} (second)")
    assert head(work) == second
    assert status(work) == []
    assert reflog(work)[0][1:5] == ["branch", "redo", second, first]

    vsync("undo")  # and again: undone once more (undo toggles)
    assert head(work) == first
    commit(work, "second, better")  # a new commit: history goes on from here
    assert [e[2] for e in reflog(work)[:2]] == ["commit", "undo"]
    # the undone commit stays reachable: gc keeps it and it can still be named
    vsync("gc")
    assert vsync("show", f"{second}:a").stdout == "two\n"
    fsck_clean(work)


def test_undo_the_first_commit_leaves_no_commit(work: Path, vsync: Vsync) -> None:
    first = commit(work, "first", a="one\n")
    out = vsync("undo")
    assert out.stdout == f"Undid commit {first[:10]} (first): main has no commit now\n"
    assert head(work) == ""
    assert status(work) == ["?? a"]
    fsck_clean(work)
    vsync("undo")
    assert head(work) == first
    assert status(work) == []


def test_nothing_to_undo(work: Path, vsync: Vsync) -> None:
    out = vsync("undo", check=False)
    assert out.returncode == 1
    assert "nothing to undo" in out.stderr
    assert vsync("reflog").stdout == ""


def test_undo_a_merge_puts_branch_and_folder_back(work: Path, vsync: Vsync) -> None:
    base = commit(work, "base", a="one\n", b="bee\n")
    theirs = commit(work, "theirs", a="one\ntheirs\n")
    vsync("undo")  # main back at base; put the folder back too and diverge
    vsync("restore", "a")
    ours = commit(work, "ours", b="bee\nours\n")
    assert head(work) == ours and ours != base
    (work / "scratch.txt").write_text("untracked, unrelated\n")
    before = snapshot_tree(work)

    out = vsync("merge", theirs)
    merged = head(work)
    assert merged not in (ours, theirs)
    assert (work / "a").read_text() == "one\ntheirs\n"
    assert "merge" in reflog(work)[0][2], out.stdout

    out = vsync("undo")
    assert out.stdout.startswith(f"Undid merge {merged[:10]} (Merge {theirs[:10]}")
    assert "main is back at " + ours[:10] in out.stdout
    assert head(work) == ours
    assert snapshot_tree(work) == before
    assert status(work) == ["?? scratch.txt"]
    fsck_clean(work)

    vsync("undo")  # redo the merge
    assert head(work) == merged
    assert (work / "a").read_text() == "one\ntheirs\n"
    assert status(work) == ["?? scratch.txt"]

    (work / "a").write_text("edited after the merge\n")  # undo never loses an edit...
    out = vsync("undo", check=False)
    assert out.returncode == 1
    assert "cannot undo the merge" in out.stderr and "'a'" in out.stderr
    assert head(work) == merged
    assert (work / "a").read_text() == "edited after the merge\n"
    vsync("undo", "--force")  # ...unless told to
    assert head(work) == ours
    assert (work / "a").read_text() == "one\n"


def test_undo_a_pull_from_a_path_remote(tmp_path: Path) -> None:
    a, b = tmp_path / "laptop", tmp_path / "desktop"
    a.mkdir()
    run_vsync("init", cwd=a)
    commit(a, "base", notes="one\n", keep="keep\n")
    server = tmp_path / "server"
    run_vsync("remote", "add", "origin", server, cwd=a)
    run_vsync("push", "--create", cwd=a)
    run_vsync("clone", server, b, cwd=tmp_path)
    base = head(b)
    (a / "keep").unlink()
    new = commit(a, "from the laptop", notes="one\ntwo\n", added="new\n")
    run_vsync("push", cwd=a)
    (b / "mine.txt").write_text("uncommitted, untouched\n")
    before = snapshot_tree(b)

    run_vsync("pull", cwd=b)
    assert head(b) == new
    assert reflog(b)[0][2] == "pull"
    out = run_vsync("undo", cwd=b)
    assert out.stdout.startswith(f"Undid pull {new[:10]} (fast-forward from origin)")
    assert head(b) == base
    assert snapshot_tree(b) == before  # 'keep' is back, 'added' is gone, mine.txt stays
    assert status(b) == ["?? mine.txt"]
    fsck_clean(b)

    run_vsync("undo", cwd=b)  # redo the pull
    assert head(b) == new
    assert (b / "added").read_text() == "new\n" and not (b / "keep").exists()
    assert status(b) == ["?? mine.txt"]


def test_undo_a_checkout_and_redo_it(work: Path, vsync: Vsync) -> None:
    first = commit(work, "first", a="one\n", b="bee\n")
    (work / "b").unlink()
    second = commit(work, "second", a="two\n", c="sea\n")
    (work / "a").write_text("uncommitted edit\n")
    (work / "notes.txt").write_text("untracked, recorded nowhere\n")
    before = snapshot_tree(work)

    refused = vsync("checkout", first, check=False)
    assert refused.returncode == 1 and "'a'" in refused.stderr
    assert reflog(work)[0][2] == "commit"  # a refused checkout records nothing

    vsync("checkout", "--force", first)
    assert (work / "a").read_text() == "one\n" and (work / "b").exists()
    assert not (work / "c").exists()
    log = reflog(work)
    assert log[0][1:4] == ["folder", "checkout", first]
    assert log[0][6] == f"checkout: {first}"
    assert head(work) == second

    out = vsync("undo")
    assert out.stdout.startswith(f"Undid checkout {first}:")
    assert snapshot_tree(work) == before  # even the edit --force overwrote is back
    assert head(work) == second
    fsck_clean(work)

    vsync("undo")  # redo
    assert (work / "a").read_text() == "one\n" and not (work / "c").exists()
    assert (work / "notes.txt").exists()  # untracked files stay through all of it
    assert [e[2] for e in reflog(work)[:3]] == ["redo", "undo", "checkout"]
    vsync("undo")
    assert snapshot_tree(work) == before
    # the journal entry keeps what the checkout replaced: restorable by id
    entry = log[0][4]
    vsync("restore", "a", "--source", entry, "--as", "saved-a")
    assert (work / "saved-a").read_text() == "uncommitted edit\n"
    vsync("gc")
    fsck_clean(work)


def test_reflog_lists_branch_moves_and_checkouts_newest_first(work: Path, vsync: Vsync) -> None:
    first = commit(work, "first", a="one\n")
    second = commit(work, "second line\n\nbody", a="two\n")
    vsync("checkout", "HEAD~1")
    lines = vsync("reflog").stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"0 {first[:10]} ") and lines[0].endswith(" checkout: HEAD~1")
    assert lines[1].startswith(f"1 {second[:10]} ") and lines[1].endswith(" commit: second line")
    assert lines[2].endswith(" commit (initial): first")
    assert vsync("reflog", "-n", "1").stdout.splitlines() == lines[:1]
    fields = reflog(work)[1]
    assert fields[:5] == ["1", "branch", "commit", second, first]
    assert fields[5].isdigit()


def test_revert_to_commits_the_old_tree_and_can_be_undone(work: Path, vsync: Vsync) -> None:
    first = commit(work, "first", a="one\n", b="bee\n")
    (work / "b").unlink()
    second = commit(work, "second", a="two\n", c="sea\n")
    (work / "untracked.txt").write_text("not swept in\n")
    at_second = snapshot_tree(work)

    out = vsync("revert-to", "HEAD~1")
    new = head(work)
    assert out.stdout.startswith(f"Reverted to {first[:10]}: new commit {new[:10]}")
    assert new not in (first, second)
    shown = vsync("show", new).stdout
    assert f"Revert to {first[:10]} (first)" in shown
    assert vsync("diff", first, new).stdout == ""  # the tree equals first's
    assert vsync("log", "--oneline").stdout.splitlines()[1:] == [
        f"{second[:10]} second",
        f"{first[:10]} first",
    ]
    assert (work / "a").read_text() == "one\n" and (work / "b").read_text() == "bee\n"
    assert not (work / "c").exists()
    assert status(work) == ["?? untracked.txt"]
    assert reflog(work)[0][2] == "revert-to"

    vsync("undo")
    assert head(work) == second
    assert snapshot_tree(work) == at_second
    fsck_clean(work)
    again = vsync("revert-to", second)
    assert "nothing to commit" in again.stdout
    assert head(work) == second


def test_revert_to_refuses_over_an_uncommitted_edit(work: Path, vsync: Vsync) -> None:
    commit(work, "first", a="one\n")
    second = commit(work, "second", a="two\n")
    (work / "a").write_text("edit\n")
    out = vsync("revert-to", "HEAD~1", check=False)
    assert out.returncode == 1 and "'a'" in out.stderr and "commit them first" in out.stderr
    assert head(work) == second and (work / "a").read_text() == "edit\n"


def test_undo_refuses_during_a_merge(work: Path, vsync: Vsync) -> None:
    commit(work, "base", a="one\n")
    theirs = commit(work, "theirs", a="theirs\n")
    vsync("undo")
    vsync("restore", "a")
    commit(work, "ours", a="ours\n")
    assert vsync("merge", theirs, check=False).returncode == 1  # a conflict
    out = vsync("undo", check=False)
    assert out.returncode == 1 and "merge --abort" in out.stderr
