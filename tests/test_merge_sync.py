"""Diverged copies joined end to end through the CLI, over SSH and a path remote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import RemoteKind, run_vsync, snapshot_tree
from test_sync import fsck_clean


def two_copies(remote: RemoteKind, tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "laptop"
    a.mkdir()
    run_vsync("init", cwd=a)
    (a / "notes.txt").write_text("one\ntwo\nthree\nfour\n")
    (a / "photo.bin").write_bytes(b"\x00\x01" * 5000)
    (a / "doc").mkdir()
    (a / "doc" / "plan.md").write_text("# plan\n")
    run_vsync("commit", "-m", "base", cwd=a)
    server = tmp_path / "server"
    remote.run("remote", "add", "origin", remote.url(server), *remote.cmd(), cwd=a)
    remote.run("push", "--create", cwd=a)
    b = tmp_path / "desktop"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    return a, b


def parents(path: Path) -> int:
    code = (
        "from vsync.model.repository import Repository as R; r=R.discover();"
        "print(len(r.gitdb.commit(r.head()).parents)); r.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=path, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_sync_on_both_copies_keeps_every_edit(remote: RemoteKind, tmp_path: Path) -> None:
    a, b = two_copies(remote, tmp_path)
    (a / "notes.txt").write_text("ONE\ntwo\nthree\nfour\n")
    (a / "doc" / "laptop.txt").write_text("from the laptop\n")
    (b / "notes.txt").write_text("one\ntwo\nthree\nFOUR\n")
    (b / "photo.bin").write_bytes(b"\x02" * 10000)
    (b / "doc" / "plan.md").unlink()
    remote.run("sync", cwd=a, env_host="laptop")
    out = remote.run("sync", cwd=b, env_host="desktop")
    assert "Merged" in out.stdout
    assert parents(b) == 2
    remote.run("sync", cwd=a)
    assert snapshot_tree(a) == snapshot_tree(b)
    assert (a / "notes.txt").read_text() == "ONE\ntwo\nthree\nFOUR\n"
    assert (a / "doc" / "laptop.txt").read_text() == "from the laptop\n"
    assert (a / "photo.bin").read_bytes() == b"\x02" * 10000
    assert not (a / "doc" / "plan.md").exists()
    for path in (a, b):
        assert run_vsync("status", "--porcelain", cwd=path).stdout == ""
        fsck_clean(path)


def test_conflict_is_kept_resolved_and_shared(remote: RemoteKind, tmp_path: Path) -> None:
    a, b = two_copies(remote, tmp_path)
    (a / "notes.txt").write_text("one\nlaptop\nthree\nfour\n")
    (a / "photo.bin").write_bytes(b"laptop" * 100)
    remote.run("sync", cwd=a, env_host="laptop")
    (b / "notes.txt").write_text("one\ndesktop\nthree\nfour\n")
    (b / "photo.bin").write_bytes(b"desktop" * 100)
    before_head = run_vsync("log", "--oneline", "-n", "1", cwd=b).stdout

    dry = remote.run("pull", "--dry-run", cwd=b)
    assert "conflict" in dry.stdout and "nothing was changed" in dry.stdout
    assert (b / "notes.txt").read_text() == "one\ndesktop\nthree\nfour\n"

    out = remote.run("sync", cwd=b, env_host="desktop", check=False)
    assert out.returncode == 1
    assert "2 conflicts to resolve" in out.stderr
    lines = run_vsync("status", "--porcelain", cwd=b).stdout.splitlines()
    assert lines[:2] == ["UU notes.txt", "UU photo.bin"]
    assert lines[2].startswith("?? photo.conflict-laptop-")  # theirs, kept beside ours
    assert len(lines) == 3
    text = (b / "notes.txt").read_text()
    assert "<<<<<<< ours" in text and ">>>>>>> theirs" in text and "laptop" in text
    copies = [p.name for p in b.iterdir() if p.name.startswith("photo.conflict-laptop-")]
    assert len(copies) == 1 and (b / copies[0]).read_bytes() == b"laptop" * 100
    assert (b / "photo.bin").read_bytes() == b"desktop" * 100  # ours stays in place

    refused = run_vsync("commit", "-m", "too early", cwd=b, check=False)
    assert refused.returncode == 1 and "unresolved" in refused.stderr
    gc = run_vsync("gc", cwd=b, check=False)
    assert gc.returncode == 1 and "merge is in progress" in gc.stderr

    run_vsync("resolve", "notes.txt", "--theirs", cwd=b)
    run_vsync("resolve", "photo.bin", "--both", cwd=b)
    run_vsync("commit", "-m", "merged by hand", cwd=b)
    assert parents(b) == 2
    assert before_head not in run_vsync("log", "--oneline", "-n", "1", cwd=b).stdout
    remote.run("push", cwd=b)
    remote.run("pull", cwd=a)
    assert snapshot_tree(a) == snapshot_tree(b)
    assert (a / "notes.txt").read_text() == "one\nlaptop\nthree\nfour\n"


def test_merge_abort_restores_the_folder(remote: RemoteKind, tmp_path: Path) -> None:
    a, b = two_copies(remote, tmp_path)
    (a / "notes.txt").write_text("one\nlaptop\nthree\nfour\n")
    remote.run("sync", cwd=a)
    (b / "notes.txt").write_text("one\ndesktop\nthree\nfour\n")
    run_vsync("commit", "-m", "desktop", cwd=b)
    (b / "doc" / "draft.txt").write_text("uncommitted, untouched by the merge\n")
    remote.run("fetch", cwd=b)
    before = snapshot_tree(b)
    out = run_vsync("merge", "origin/main", cwd=b, check=False)
    assert out.returncode == 1 and "UU notes.txt" in out.stdout
    run_vsync("merge", "--abort", cwd=b)
    assert snapshot_tree(b) == before
    assert run_vsync("status", "--porcelain", cwd=b).stdout == "?? doc/draft.txt\n"


def test_resolve_flags_cover_the_shell_actions(tmp_path: Path) -> None:
    """--undo brings the conflict back; --edit runs $EDITOR and marks when markers are gone."""
    remote = RemoteKind("path", None)
    a, b = two_copies(remote, tmp_path)
    (a / "notes.txt").write_text("one\nlaptop\nthree\nfour\n")
    remote.run("sync", cwd=a)
    (b / "notes.txt").write_text("one\ndesktop\nthree\nfour\n")
    assert remote.run("sync", cwd=b, check=False).returncode == 1
    marked = (b / "notes.txt").read_text()
    run_vsync("resolve", "notes.txt", "--ours", cwd=b)
    assert (b / "notes.txt").read_text() == "one\ndesktop\nthree\nfour\n"
    run_vsync("resolve", "notes.txt", "--undo", cwd=b)
    assert (b / "notes.txt").read_text() == marked
    assert run_vsync("status", "--porcelain", cwd=b).stdout == "UU notes.txt\n"
    editor = tmp_path / "fix.sh"
    editor.write_text('#!/bin/sh\nprintf "one\\nboth\\nthree\\nfour\\n" > "$1"\n')
    editor.chmod(0o755)
    out = run_vsync("resolve", "notes.txt", "--edit", cwd=b, env={"EDITOR": str(editor)})
    assert "marked resolved" in out.stdout and "0 conflicts remain" in out.stdout
    run_vsync("commit", "-m", "merged", cwd=b)
    assert parents(b) == 2 and (b / "notes.txt").read_text() == "one\nboth\nthree\nfour\n"
