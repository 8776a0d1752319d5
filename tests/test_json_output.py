"""``--json`` on status, log and history: one JSON document on stdout, shapes as documented
in docs/user-guide.md ("Output for scripts: --json"). Real vsync subprocesses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Run, run_vsync

COMMIT_KEYS = {"id", "parents", "author", "host", "date", "time", "message"}


def as_json(run: Run, warned: str = "") -> Any:
    """The one JSON document of ``run``; stderr empty, or one warning holding ``warned``."""
    if warned:
        assert warned in run.stderr and run.stderr.count("\n") == 1, run.stderr
    else:
        assert run.stderr == "", run.stderr
    assert run.returncode == 0
    assert run.stdout.endswith("\n") and run.stdout.count("\n") == 1  # one document, one line
    return json.loads(run.stdout)


def one_line_error(run: Run, text: str) -> None:
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in run.stderr, run.stderr


def test_status_json(work: Path) -> None:
    def status(warned: str = "") -> Any:
        return as_json(run_vsync("status", "--json", cwd=work), warned)

    empty = status()
    assert empty == {
        "branch": "main",
        "head": None,
        "clean": True,
        "changes": [],
        "merge": None,
        "held": [],
        "unreadable": [],
    }
    (work / "a.txt").write_text("one\n")
    (work / "b.txt").write_text("two\n")
    run_vsync("commit", "-m", "first", cwd=work)
    head = run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout.split()[0]
    (work / "a.txt").write_text("changed\n")
    (work / "b.txt").unlink()
    (work / "new \u00e9\x01.txt").write_text("new\n")  # JSON escapes it; no vsync escaping
    now = status(warned="control character")  # (not portable: a warning on stderr)
    assert now["head"].startswith(head) and len(now["head"]) == 40 and now["clean"] is False
    assert now["changes"] == [
        {"code": " M", "status": "modified", "path": "a.txt"},
        {"code": " D", "status": "deleted", "path": "b.txt"},
        {"code": "??", "status": "new file", "path": "new \u00e9\x01.txt"},
    ]
    one_line_error(run_vsync("status", "--json", "--porcelain", cwd=work, check=False), "--json")


def test_log_json(work: Path) -> None:
    assert as_json(run_vsync("log", "--json", cwd=work)) == []  # no commits: an empty array
    for n, name in enumerate(("a.txt", "b.txt", "a.txt"), 1):
        (work / name).write_text(f"{n}\n")
        run_vsync("commit", "-m", f"commit {n}\n\nbody {n}", cwd=work)
    commits = as_json(run_vsync("log", "--json", cwd=work))
    assert [c["message"] for c in commits] == [f"commit {n}\n\nbody {n}\n" for n in (3, 2, 1)]
    assert all(set(c) == COMMIT_KEYS for c in commits)
    assert commits[0]["parents"] == [commits[1]["id"]] and commits[2]["parents"] == []
    first = commits[2]
    assert first["host"] == "testhost" and first["author"] == "Test Author <test@example.com>"
    assert isinstance(first["time"], int) and first["date"].startswith("20")
    assert first["date"][19:] in ("Z", "+00:00") or first["date"][19] in "+-"
    only_a = as_json(run_vsync("log", "--json", "a.txt", cwd=work))
    assert [c["id"] for c in only_a] == [commits[0]["id"], commits[2]["id"]]
    assert len(as_json(run_vsync("log", "--json", "-n", "1", cwd=work))) == 1
    for flag in ("--oneline", "--follow", "--deleted"):
        args = ["log", "--json", flag] + (["a.txt"] if flag == "--follow" else [])
        one_line_error(run_vsync(*args, cwd=work, check=False), "--json does not go with")


def test_history_json(work: Path) -> None:
    assert as_json(run_vsync("history", "--json", cwd=work)) == {
        "path": "",
        "kind": "folder",
        "commits": [],
    }
    (work / "sub").mkdir()
    (work / "sub" / "f.txt").write_text("v1\n")
    run_vsync("commit", "-m", "v1", cwd=work)
    (work / "sub" / "f.txt").write_text("version two\n")
    (work / "sub" / "f.txt").chmod(0o755)
    run_vsync("commit", "-m", "v2", cwd=work)

    file = as_json(run_vsync("history", "--json", "f.txt", cwd=work / "sub"))
    assert file["path"] == "sub/f.txt" and file["kind"] == "file"
    v2, v1 = file["versions"]
    assert set(v2) == {"commit", "path", "type", "executable", "size", "chunks", "manifest"}
    assert (v2["size"], v2["executable"], v2["type"]) == (12, True, "file")
    assert (v1["size"], v1["executable"], v1["chunks"]) == (3, False, 1)
    assert v2["commit"]["message"] == "v2\n" and set(v1["commit"]) == COMMIT_KEYS
    assert len(v2["manifest"]) == 40 and v2["manifest"] != v1["manifest"]

    folder = as_json(run_vsync("history", "--json", cwd=work))
    assert folder["kind"] == "folder"
    assert [c["changes"] for c in folder["commits"]] == [
        [{"code": "M", "path": "sub/f.txt"}],
        [{"code": "A", "path": "sub/f.txt"}],
    ]
    missing = run_vsync("history", "--json", "nope.txt", cwd=work, check=False)
    assert missing.returncode == 2 and missing.stdout == ""


def test_status_json_during_a_merge(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    run_vsync("init", cwd=a)
    (a / "t.txt").write_text("base\n")
    run_vsync("commit", "-m", "base", cwd=a)
    run_vsync("clone", a, b, cwd=tmp_path)
    (a / "t.txt").write_text("from a\n")
    run_vsync("commit", "-m", "a", cwd=a)
    (b / "t.txt").write_text("from b\n")
    run_vsync("commit", "-m", "b", cwd=b)
    assert run_vsync("pull", cwd=b, check=False).returncode == 1  # a conflict
    theirs = as_json(run_vsync("log", "--json", "-n", "1", cwd=a))[0]["id"]
    now = as_json(run_vsync("status", "--json", cwd=b))
    assert now["merge"] == {"theirs": theirs, "unresolved": ["t.txt"]}
    assert now["clean"] is False
    assert {"code": "UU", "status": "both changed", "path": "t.txt"} in now["changes"]


def test_diff_stat_and_its_json(work: Path) -> None:
    (work / "a.txt").write_text("one\ntwo\nthree\n")
    (work / "gone.txt").write_text("x\ny\n")
    (work / "b.bin").write_bytes(b"\0" * 10)
    run_vsync("commit", "-m", "first", cwd=work)
    (work / "a.txt").write_text("one\nTWO\nthree\nfour\n")  # 2 insertions, 1 deletion
    (work / "gone.txt").unlink()  # 2 deletions
    (work / "b.bin").write_bytes(b"\0" * 25)
    (work / "new.txt").write_text("n\n")  # 1 insertion
    run_vsync("commit", "-m", "second", cwd=work)

    text = run_vsync("diff", "--stat", "HEAD~1", "HEAD", cwd=work).stdout
    assert text == (
        " a.txt    | 3 ++-\n"
        " b.bin    | Bin 10 -> 25 bytes\n"
        " gone.txt | 2 --\n"
        " new.txt  | 1 +\n"
        " 4 files changed, 3 insertions(+), 3 deletions(-)\n"
    )
    stat = as_json(run_vsync("diff", "HEAD~1", "HEAD", "--stat", "--json", cwd=work))
    assert stat == {
        "files": [
            {
                "path": "a.txt",
                "status": "M",
                "kind": "text",
                "insertions": 2,
                "deletions": 1,
                "old_size": None,
                "new_size": None,
            },
            {
                "path": "b.bin",
                "status": "M",
                "kind": "binary",
                "insertions": None,
                "deletions": None,
                "old_size": 10,
                "new_size": 25,
            },
            {
                "path": "gone.txt",
                "status": "D",
                "kind": "text",
                "insertions": 0,
                "deletions": 2,
                "old_size": None,
                "new_size": None,
            },
            {
                "path": "new.txt",
                "status": "A",
                "kind": "text",
                "insertions": 1,
                "deletions": 0,
                "old_size": None,
                "new_size": None,
            },
        ],
        "files_changed": 4,
        "insertions": 3,
        "deletions": 3,
    }
    (work / "a.txt").write_text("one\n")  # against the working folder too
    worktree = as_json(run_vsync("diff", "--stat", "--json", cwd=work))
    assert [(f["path"], f["insertions"], f["deletions"]) for f in worktree["files"]] == [
        ("a.txt", 0, 3)
    ]
    assert run_vsync("diff", "--stat", "--", "new.txt", cwd=work).stdout == ""
    one_line_error(run_vsync("diff", "--json", cwd=work, check=False), "--stat")


TRANSFER_KEYS = {
    "remote",
    "old",
    "new",
    "up_to_date",
    "objects",
    "pack_bytes",
    "chunks",
    "chunk_bytes",
    "wire_sent",
    "wire_received",
    "seconds",
}


def test_push_fetch_pull_json(tmp_path: Path) -> None:
    a, b, hub = tmp_path / "a", tmp_path / "b", tmp_path / "hub.vsync"
    a.mkdir()
    run_vsync("init", cwd=a)
    run_vsync("init", "--bare", hub, cwd=tmp_path)
    (a / "f.txt").write_text("hello\n" * 100)
    run_vsync("commit", "-m", "one", cwd=a)
    run_vsync("remote", "add", "origin", hub, cwd=a)
    head = as_json(run_vsync("log", "--json", "-n", "1", cwd=a))[0]["id"]

    pushed = as_json(run_vsync("push", "--json", cwd=a))
    assert set(pushed) == TRANSFER_KEYS
    assert (pushed["old"], pushed["new"], pushed["up_to_date"]) == (None, head, False)
    assert pushed["objects"] > 0 and pushed["chunks"] == 1 and pushed["wire_sent"] > 0
    assert isinstance(pushed["seconds"], float) and pushed["remote"] == "origin"
    porcelain = dict(
        line.split("=", 1) for line in run_vsync("push", "--porcelain", cwd=a).stdout.split()
    )
    again = as_json(run_vsync("push", "--json", cwd=a))
    assert again["up_to_date"] is True and porcelain["up_to_date"] == "1"
    assert again["objects"] == int(porcelain["objects"]) == 0

    run_vsync("clone", hub, b, cwd=tmp_path)
    (a / "f.txt").write_text("changed\n")
    run_vsync("commit", "-m", "two", cwd=a)
    run_vsync("push", "-q", cwd=a)
    new_head = as_json(run_vsync("log", "--json", "-n", "1", cwd=a))[0]["id"]
    fetched = as_json(run_vsync("fetch", "--json", cwd=b))
    assert set(fetched) == TRANSFER_KEYS
    assert (fetched["old"], fetched["new"], fetched["chunks"]) == (head, new_head, 1)
    pulled = as_json(run_vsync("pull", "--json", cwd=b))
    assert set(pulled) == TRANSFER_KEYS | {"outcome"}
    assert pulled["up_to_date"] is True and pulled["outcome"] == "fast-forward"
    assert (b / "f.txt").read_text() == "changed\n"
    one_line_error(run_vsync("push", "--json", "--porcelain", cwd=a, check=False), "--json")
