"""Revision names (vsync/model/revisions.py) on real repositories.

Resolution is checked in-process (fast); exit codes and messages through the real CLI.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Run, run_vsync
from vsync.errors import UnknownRevision
from vsync.model.gitdb import RawObject, commit_object
from vsync.model.repository import Repository
from vsync.model.revisions import resolve

Vsync = Callable[..., Run]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[int]]:
    """Three commits of f.txt ("1", "2", "3"), the first two at least a second apart.

    Returns the folder, the commit ids oldest first and the reflog times.
    """
    root = tmp_path_factory.mktemp("revs") / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    (root / "odd}:name.txt").write_text("odd\n")
    for n in (1, 2, 3):
        (root / "f.txt").write_text(f"{n}\n")
        run_vsync("commit", "-m", f"c{n}", cwd=root)
        if n == 1:
            time.sleep(1.1)
    log = (root / ".vsync" / "git" / "logs" / "refs" / "heads" / "main").read_text()
    ids, times = [], []
    for line in log.splitlines():
        old_new, _msg = line.split("\t", 1)
        fields = old_new.split()
        ids.append(fields[1])
        times.append(int(fields[-2]))
    assert len(ids) == 3 and times[1] > times[0]
    return root, ids, times


def rev(root: Path, spec: str) -> str:
    """The commit id ``spec`` names (in-process: the CLI path is covered below)."""
    with Repository.open_path(root) as repo:
        return resolve(repo, spec).decode()


def fails(root: Path, spec: str, text: str) -> None:
    with Repository.open_path(root) as repo, pytest.raises(UnknownRevision) as info:
        resolve(repo, spec)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"unknown revision '{spec}'")
    assert text in str(info.value)


def fails_cli(root: Path, spec: str, text: str) -> None:
    r = run_vsync("show", spec, cwd=root, check=False)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"vsync: error: unknown revision '{spec}'")
    assert text in r.stderr


def test_cli_resolves_and_reports(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, _ = three
    out = run_vsync("show", "HEAD~1", cwd=root).stdout
    assert out.startswith(f"commit {ids[1]}\n")
    fails_cli(root, "nosuchbranch", "")
    fails_cli(root, "HEAD~3", "history is not that long")
    fails_cli(root, "HEAD@{2000-01-01 14:00}", "before the first recorded commit")


def test_head_parents_and_branch(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, _ = three
    assert rev(root, "HEAD") == ids[2]
    assert rev(root, "@") == ids[2]
    assert rev(root, "main") == ids[2]
    assert rev(root, "refs/heads/main") == ids[2]
    assert rev(root, "HEAD~1") == ids[1]
    assert rev(root, "HEAD^") == ids[1]
    assert rev(root, "HEAD~2") == ids[0]
    assert rev(root, "HEAD^^") == ids[0]
    assert rev(root, "main~1^") == ids[0]
    fails(root, "HEAD~3", "history is not that long")
    fails(root, "HEAD^2", "no parent #2")


def test_abbreviated_and_full_ids(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, _ = three
    assert rev(root, ids[0]) == ids[0]
    assert rev(root, ids[1][:12]) == ids[1]
    assert rev(root, ids[1][:12].upper()) == ids[1]
    assert rev(root, ids[2][:12] + "~2") == ids[0]
    fails(root, "0" * 40, "")
    fails(root, "nosuchbranch", "")
    fails(root, "HEAD~x", "")


def test_reflog_positions(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, _ = three
    assert rev(root, "HEAD@{0}") == ids[2]
    assert rev(root, "HEAD@{1}") == ids[1]
    assert rev(root, "main@{2}") == ids[0]
    assert rev(root, "@{1}~1") == ids[0]
    fails(root, "HEAD@{3}", "only 3 recorded positions")


def test_reflog_dates(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, times = three
    assert rev(root, "HEAD@{2999-01-01}") == ids[2]
    after = datetime.fromtimestamp(times[2]) + timedelta(minutes=1)
    assert rev(root, "HEAD@{" + after.strftime("%Y-%m-%d %H:%M") + "}") == ids[2]
    # a time between the first and second commit, to the second
    first = datetime.fromtimestamp(times[0]).strftime("%Y-%m-%d %H:%M:%S")
    assert rev(root, "HEAD@{" + first + "}") == ids[0]
    assert rev(root, "HEAD@{" + str(times[0]) + "}") == ids[0]
    # minutes only, before the first commit
    before = datetime.fromtimestamp(times[0]) - timedelta(minutes=2)
    spec = "HEAD@{" + before.strftime("%Y-%m-%d %H:%M") + "}"
    fails(root, spec, "before the first recorded commit")
    fails(root, "HEAD@{2000-01-01 14:00}", "before the first recorded commit")
    fails(root, "HEAD@{not a date}", "cannot understand the date")


def test_rev_path_with_a_date_holding_colons(three: tuple[Path, list[str], list[int]]) -> None:
    root, _ids, times = three
    first = datetime.fromtimestamp(times[0]).strftime("%Y-%m-%d %H:%M:%S")
    r = run_vsync("show", "HEAD@{" + first + "}:f.txt", cwd=root)
    assert r.stdout_bytes == b"1\n"
    assert run_vsync("show", "HEAD@{2999-01-01 10:00}:f.txt", cwd=root).stdout_bytes == b"3\n"
    assert run_vsync("show", "HEAD~1:f.txt", cwd=root).stdout_bytes == b"2\n"
    # the path is everything after the first ':' outside @{...}, braces and colons included
    assert run_vsync("show", "HEAD:odd}:name.txt", cwd=root).stdout_bytes == b"odd\n"
    spec = "HEAD@{" + first + "}:odd}:name.txt"
    assert run_vsync("show", spec, cwd=root).stdout_bytes == b"odd\n"


def test_log_and_diff_take_revisions(three: tuple[Path, list[str], list[int]]) -> None:
    root, ids, _ = three
    out = run_vsync("log", "--oneline", "--rev", "HEAD@{1}", cwd=root).stdout
    assert [line.split()[0] for line in out.splitlines()] == [ids[1][:10], ids[0][:10]]
    diff = run_vsync("diff", ids[0][:8], "main", cwd=root).stdout
    assert diff.endswith("@@ -1 +1 @@\n-1\n+3\n")
    r = run_vsync("log", "--rev", "nosuch", cwd=root, check=False)
    assert r.returncode == 2 and "unknown revision 'nosuch'" in r.stderr


def test_ambiguous_prefix_is_refused(work: Path, vsync: Vsync) -> None:
    (work / "f.txt").write_text("x\n")
    vsync("commit", "-m", "base")
    with Repository.open_path(work) as repo:
        head = repo.head()
        assert head is not None
        base = repo.gitdb.commit(head)
        by_prefix: dict[str, RawObject] = {}
        for i in itertools.count():  # ~300 tries on average to share 4 hex digits
            c = commit_object(
                tree=base.tree,
                parents=[head],
                author=b"T <t@example.com>",
                time=base.commit_time,
                timezone=0,
                message=f"try {i}\n".encode(),
            )
            key = c.id.decode()[:4]
            if key in by_prefix:
                pair = (by_prefix[key], c)
                break
            by_prefix[key] = c
        repo.gitdb.add(list(pair))
    prefix = pair[0].id.decode()[:4]
    r = vsync("show", prefix, check=False)
    assert r.returncode == 2
    assert f"unknown revision '{prefix}': ambiguous" in r.stderr
    common = len(
        list(
            itertools.takewhile(
                lambda ab: ab[0] == ab[1], zip(*(c.id.decode() for c in pair), strict=True)
            )
        )
    )
    longer = pair[1].id.decode()[: common + 1]
    assert rev(work, longer) == pair[1].id.decode()


def test_revisions_need_commits(work: Path, vsync: Vsync) -> None:
    fails_cli(work, "HEAD", "there are no commits yet")
    fails(work, "HEAD~1", "there are no commits yet")


def test_position_zero_needs_no_reflog(work: Path, vsync: Vsync) -> None:
    (work / "f.txt").write_text("x\n")
    vsync("commit", "-m", "one")
    head = rev(work, "HEAD")
    (work / ".vsync" / "git" / "logs" / "refs" / "heads" / "main").unlink()
    assert rev(work, "HEAD@{0}") == head  # where the branch points now
    fails(work, "HEAD@{1}", "no history of where the ref pointed")
