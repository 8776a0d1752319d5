"""Going back in history through the real CLI: ``--at``, ``log --follow``,
``log --deleted``, ``restore --as`` and restoring a deleted file."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from conftest import Run

Vsync = Callable[..., Run]
DAY = 86400


def ids(vsync: Vsync) -> list[str]:
    """Full commit ids of the branch, newest first."""
    return re.findall(r"^commit ([0-9a-f]{40})$", vsync("log").stdout, re.M)


def age_reflog(work: Path, ages: list[int]) -> list[int]:
    """Give the branch's reflog lines the times now - ages[i] (git's reflog format)."""
    log = work / ".vsync" / "git" / "logs" / "refs" / "heads" / "main"
    lines = log.read_bytes().decode().splitlines()
    assert len(lines) == len(ages)
    now = int(time.time())
    times = [now - age for age in ages]
    out = []
    for line, when in zip(lines, times, strict=True):
        m = re.match(r"^(.* )(\d+) ([+-]\d{4})\t(.*)$", line)
        assert m, line
        out.append(f"{m.group(1)}{when} {m.group(3)}\t{m.group(4)}")
    log.write_text("\n".join(out) + "\n")
    return times


def one_line_error(run: Run, code: int) -> str:
    assert run.returncode == code, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def test_at_dates_on_log_show_diff_restore_and_checkout(work: Path, vsync: Vsync) -> None:
    for n in (1, 2, 3):
        (work / "f.txt").write_text(f"{n}\n")
        vsync("commit", "-m", f"c{n}")
    c3, c2, c1 = ids(vsync)
    times = age_reflog(work, [10 * DAY, 5 * DAY, 2 * 3600])

    assert vsync("log", "--oneline", "--at", "7 days ago").stdout == f"{c1[:10]} c1\n"
    assert vsync("log", "--oneline", "--at", "3 days ago").stdout.split()[0] == c2[:10]
    assert vsync("log", "--oneline", "--at", "now").stdout.split()[0] == c3[:10]
    stamp = datetime.fromtimestamp(times[1] + 60).strftime("%Y-%m-%d %H:%M")
    assert vsync("show", "--at", stamp).stdout.startswith(f"commit {c2}\n")
    assert vsync("show", "--at", "3 days ago", "f.txt").stdout == "2\n"
    (work / "sub").mkdir()  # --at's PATH is a plain path: from the current directory
    assert vsync("show", "--at", "3 days ago", "../f.txt", cwd=work / "sub").stdout == "2\n"
    assert vsync("show", "HEAD@{yesterday}:f.txt").stdout == "2\n"  # REV@{date} too
    assert vsync("show", "main@{3 days ago}:f.txt").stdout == "2\n"
    diff = vsync("diff", "--at", "7 days ago", "--", "f.txt").stdout
    assert "-1\n+3\n" in diff

    vsync("restore", "f.txt", "--at", "3 days ago")
    assert (work / "f.txt").read_text() == "2\n"
    vsync("checkout", "--at", "7 days ago")
    assert (work / "f.txt").read_text() == "1\n"
    vsync("undo")  # the checkout is undone: the folder holds what restore wrote
    assert (work / "f.txt").read_text() == "2\n"

    early = vsync("log", "--at", "20 days ago", check=False)
    assert "main had no commit on" in one_line_error(early, 2)
    assert "pick a later date" in early.stderr
    bad = vsync("restore", "f.txt", "--at", "not a date at all", check=False)
    assert "cannot understand the date" in one_line_error(bad, 2)
    both = vsync("restore", "f.txt", "--source", "HEAD", "--at", "now", check=False)
    assert "either --source or --at" in one_line_error(both, 2)


def test_log_follow_across_a_rename_with_an_edit(work: Path, vsync: Vsync) -> None:
    lines = [f"line {i}\n" for i in range(10)]
    (work / "old").mkdir()
    (work / "old" / "name.txt").write_text("".join(lines))
    (work / "other.txt").write_text("unrelated\n")
    vsync("commit", "-m", "add")
    lines[0] = "LINE 0\n"
    (work / "old" / "name.txt").write_text("".join(lines))
    vsync("commit", "-m", "edit before")
    (work / "other.txt").write_text("unrelated, changed\n")
    vsync("commit", "-m", "not about it")
    # rename with an edit (8 of 10 lines kept); a dissimilar file goes in the same commit
    (work / "old" / "name.txt").unlink()
    (work / "other.txt").unlink()
    lines[1], lines[2] = "one\n", "two\n"
    (work / "new.txt").write_text("".join(lines))
    vsync("commit", "-m", "rename and edit")
    (work / "new.txt").write_text("".join(lines) + "tail\n")
    vsync("commit", "-m", "edit after")
    newest, renamed, _unrelated, before, added = ids(vsync)

    plain = vsync("log", "--oneline", "new.txt").stdout.splitlines()
    assert [line.split()[0] for line in plain] == [newest[:10], renamed[:10]]

    out = vsync("log", "--oneline", "--follow", "new.txt").stdout.splitlines()
    size = len("".join(lines))
    assert out == [
        f"{newest[:10]} {size + 5} bytes ({size + 5} B) edit after",
        f"{renamed[:10]} {size} bytes ({size} B) rename and edit",
        f"{before[:10]} 70 bytes (70 B) edit before  [old/name.txt]",
        f"{added[:10]} 70 bytes (70 B) add  [old/name.txt]",
    ]
    full = vsync("log", "--follow", "-n", "3", "new.txt").stdout
    entries = full.split("\n\ncommit ")
    assert len(entries) == 3
    assert "Author: Test Author <test@example.com>\nHost: testhost\nDate:   " in entries[0]
    assert f"Size:   {size + 5} bytes" in entries[0] and "Path:" not in entries[0]
    assert "Renamed: old/name.txt -> new.txt" in entries[1]
    assert "Size:   70 bytes (70 B)\nPath:   old/name.txt\n" in entries[2]
    assert "    edit before" in entries[2]

    gone = vsync("log", "--oneline", "--follow", "old/name.txt").stdout.splitlines()
    assert gone == [
        f"{renamed[:10]} deleted rename and edit",
        f"{before[:10]} 70 bytes (70 B) edit before",
        f"{added[:10]} 70 bytes (70 B) add",
    ]
    folder = vsync("log", "--follow", "--rev", before, "old", check=False)
    assert "'old' is a folder" in one_line_error(folder, 2)
    two = vsync("log", "--follow", "new.txt", "old", check=False)
    assert "exactly one PATH" in one_line_error(two, 2)


def test_log_deleted_and_restoring_a_deleted_file(work: Path, vsync: Vsync) -> None:
    (work / "keep.txt").write_text("keep\n")
    (work / "gone.txt").write_text("twelve bytes")
    (work / "dir").mkdir()
    (work / "dir" / "a.bin").write_bytes(b"\x00" * 300)
    (work / "dir" / "b.txt").write_text("b\n")
    vsync("commit", "-m", "all")
    (work / "gone.txt").unlink()
    vsync("commit", "-m", "drop gone")
    (work / "dir" / "a.bin").unlink()
    (work / "dir" / "b.txt").unlink()
    (work / "dir").rmdir()
    vsync("commit", "-m", "drop dir")
    drop_dir, drop_gone, _all = ids(vsync)

    out = vsync("log", "--deleted")
    rows = [line.split(" ", 2) for line in out.stdout.splitlines()]
    assert [r[2] for r in rows] == [
        f"{drop_dir[:10]} dir/a.bin (300 bytes)",
        f"{drop_dir[:10]} dir/b.txt (2 bytes)",
        f"{drop_gone[:10]} gone.txt (12 bytes)",
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r[0]) for r in rows)
    assert "vsync restore PATH --source COMMIT~1" in out.stderr
    only = vsync("log", "--deleted", "dir", "-n", "1").stdout.splitlines()
    assert only == out.stdout.splitlines()[:1]

    vsync("restore", "gone.txt", "--source", f"{drop_gone[:10]}~1")
    assert (work / "gone.txt").read_text() == "twelve bytes"
    vsync("restore", "dir", "--source", f"{drop_dir}~1")  # a deleted folder, whole
    assert (work / "dir" / "a.bin").read_bytes() == b"\x00" * 300
    assert vsync("status", "--porcelain").stdout.splitlines() == [
        "?? dir/a.bin",
        "?? dir/b.txt",
        "?? gone.txt",
    ]


def test_restore_as_beside_the_current_version(work: Path, vsync: Vsync) -> None:
    (work / "docs").mkdir()
    (work / "docs" / "plan.md").write_text("plan v1\n")
    (work / "docs" / "sub").mkdir()
    (work / "docs" / "sub" / "x.txt").write_text("x v1\n")
    (work / "a.txt").write_text("a v1\n")
    vsync("commit", "-m", "v1")
    (work / "docs" / "plan.md").write_text("plan v2\n")
    (work / "a.txt").write_text("a v2\n")
    vsync("commit", "-m", "v2")

    out = vsync("restore", "a.txt", "--source", "HEAD~1", "--as", "a-old.txt")
    assert out.stdout.startswith("Restored 1 file as 'a-old.txt'")
    assert (work / "a-old.txt").read_text() == "a v1\n"
    assert (work / "a.txt").read_text() == "a v2\n"

    vsync("restore", "docs", "--source", "HEAD~1", "--as", "archive/docs-v1")
    assert (work / "archive" / "docs-v1" / "plan.md").read_text() == "plan v1\n"
    assert (work / "archive" / "docs-v1" / "sub" / "x.txt").read_text() == "x v1\n"
    assert (work / "docs" / "plan.md").read_text() == "plan v2\n"
    assert vsync("status", "--porcelain").stdout.splitlines() == [
        "?? a-old.txt",
        "?? archive/docs-v1/plan.md",
        "?? archive/docs-v1/sub/x.txt",
    ]

    exists = vsync("restore", "a.txt", "--source", "HEAD~1", "--as", "a-old.txt", check=False)
    assert "already exists" in one_line_error(exists, 2)
    vsync("restore", "a.txt", "--as", "a-old.txt", "--force")  # its content is recorded
    assert (work / "a-old.txt").read_text() == "a v2\n"

    (work / "a-old.txt").write_text("my own edit\n")
    refused = vsync("restore", "a.txt", "--as", "a-old.txt", "--force", check=False)
    assert "pick another name" in one_line_error(refused, 1)
    assert (work / "a-old.txt").read_text() == "my own edit\n"
    many = vsync("restore", "a.txt", "docs", "--as", "x", check=False)
    assert "exactly one PATH" in one_line_error(many, 2)
