"""Working files vsync writes follow the user's umask (0o666 / 0o777 & ~umask)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_vsync


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the vsync subprocesses started inside with ``mask`` (they inherit it)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o027, 0o077], ids=["027", "077"])
def test_written_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    plain, executable = 0o666 & ~mask, 0o777 & ~mask
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    run_vsync("init", cwd=a)
    (a / "notes.txt").write_text("hello\n")
    (a / "run.sh").write_text("#!/bin/sh\n")
    (a / "notes.txt").chmod(0o644)
    (a / "run.sh").chmod(0o755)
    run_vsync("commit", "-m", "first", cwd=a)
    with umask(mask):  # checkout writes (clone)
        run_vsync("clone", a, b, cwd=tmp_path)
    assert mode(b / "notes.txt") == plain and mode(b / "run.sh") == executable
    (a / "notes.txt").chmod(0o755)
    run_vsync("commit", "-m", "exec", cwd=a)
    with umask(mask):  # a fast-forward that only changes the exec bit (chmod)
        run_vsync("pull", cwd=b)
    assert mode(b / "notes.txt") == executable
    (a / "notes.txt").chmod(0o644)
    (a / "new.txt").write_text("new\n")
    run_vsync("commit", "-m", "theirs", cwd=a)
    (b / "other.txt").write_text("ours\n")
    run_vsync("commit", "-m", "ours", cwd=b)
    with umask(mask):  # a merge: a new file (write) and an exec bit dropped (chmod)
        run_vsync("pull", cwd=b)
    assert mode(b / "new.txt") == plain and mode(b / "notes.txt") == plain
    (b / "run.sh").unlink()
    with umask(mask):  # restore
        run_vsync("restore", "run.sh", cwd=b)
    assert mode(b / "run.sh") == executable
    assert run_vsync("status", "--porcelain", cwd=b).stdout == ""
