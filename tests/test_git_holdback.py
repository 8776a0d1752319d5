"""Files under tracked ``.git`` folders that git would run are held back from peers.

A peer's ``.git/config`` (``core.fsmonitor``), ``.git/hooks/*``, gitfiles and
symlinks under ``.git`` are not written, exec bits under ``.git`` are dropped,
one warning names them; they stay in history unchanged, ``status`` lists them,
and ``safety.trustGitFolders`` plus ``vsync checkout HEAD`` writes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_vsync

from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, commit_tree, flatten
from vsync.ops.versions import file_versions, save_beside


def write(root: Path, rel: str, text: str, exec_bit: bool = False) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755 if exec_bit else 0o644)


def head_flat(root: Path) -> FlatMap:
    with Repository.open_path(root) as repo:
        head = repo.head()
        assert head is not None
        return flatten(repo.gitdb, commit_tree(repo.gitdb, head))


def is_exec(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


HELD = [  # what a peer may not plant, and the exec bit under .git
    ".git/config",
    ".git/hooks/pre-commit",
    ".git/tool",
    "x/.git/hooks/post-checkout",
    "x/.git/modules/m/config",
    "y/.git",
]


def hostile_origin(root: Path, marker: Path) -> None:
    root.mkdir()
    run_vsync("init", cwd=root)
    write(root, "notes.txt", "hello\n")
    run_vsync("commit", "-m", "notes", cwd=root)
    hook = f"#!/bin/sh\ntouch {marker}\n"
    write(root, ".git/config", f"[core]\n\tfsmonitor = touch {marker}\n")
    write(root, ".git/HEAD", "ref: refs/heads/main\n")
    write(root, ".git/hooks/pre-commit", hook, exec_bit=True)
    write(root, ".git/tool", hook, exec_bit=True)
    write(root, "x/.git/hooks/post-checkout", hook, exec_bit=True)
    write(root, "x/.git/modules/m/config", "[core]\n\thooksPath = ../../evil\n")
    write(root, "y/.git", "gitdir: ../evil\n")
    write(root, "bin/run.sh", hook, exec_bit=True)
    run_vsync("commit", "-m", "a git checkout, and a trap", cwd=root)


def held_lines(root: Path) -> list[str]:
    return run_vsync("status", "--porcelain", cwd=root).stdout.splitlines()


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "held back" in line]


def test_clone_and_pull_hold_back_what_git_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    a, b = tmp_path / "a", tmp_path / "b"
    hostile_origin(a, marker)
    out = run_vsync("clone", a, b, cwd=tmp_path)
    for rel in HELD:
        if rel != ".git/tool":
            assert not os.path.lexists(b / rel), rel
    assert (b / ".git" / "tool").read_text() == (a / ".git" / "tool").read_text()
    assert not is_exec(b / ".git" / "tool")
    assert (b / ".git" / "HEAD").exists() and is_exec(b / "bin" / "run.sh")
    [warning] = warning_lines(out.stderr)  # one warning for the command, naming them all
    assert all(f"'{rel}'" in warning for rel in HELD), warning
    assert "safety.trustGitFolders" in warning and "vsync checkout HEAD" in warning
    assert held_lines(b) == [f"!H {rel}" for rel in sorted(HELD)]
    assert "Held back" in run_vsync("status", cwd=b).stdout
    # a commit keeps them in history as they were: no deletion, no mode change spreads
    before = head_flat(a)
    (b / "notes.txt").write_text("edited in b\n")
    run_vsync("commit", "-m", "edit", cwd=b)
    after = head_flat(b)
    assert all(after[rel] == before[rel] for rel in HELD)
    run_vsync("push", cwd=b)
    assert head_flat(a) == after
    # a peer's change to a held path is held back again, with one warning
    write(a, ".git/config", f"[core]\n\tfsmonitor = touch {marker}.2\n")
    write(a, ".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n", exec_bit=True)
    run_vsync("commit", "-m", "change the trap", cwd=a)
    out = run_vsync("pull", cwd=b)
    [warning] = warning_lines(out.stderr)
    assert "'.git/config'" in warning and "'.git/hooks/pre-commit'" in warning
    assert "'x/.git" not in warning  # unchanged paths are not written again
    assert not (b / ".git" / "config").exists() and not (b / ".git" / "hooks").exists()
    assert held_lines(b) == [f"!H {rel}" for rel in sorted(HELD)]
    run_vsync("commit", "-m", "nothing", cwd=b)  # nothing changed: no commit
    assert head_flat(b) == head_flat(a)
    # opting in (only the user can: configs are never transferred) writes them
    with open(b / ".vsync" / "config", "a") as f:
        f.write("[safety]\n\ttrustGitFolders = true\n")
    out = run_vsync("checkout", "HEAD", cwd=b)
    assert not warning_lines(out.stderr)
    for rel in HELD:
        assert (b / rel).read_bytes() == (a / rel).read_bytes(), rel
    assert is_exec(b / ".git" / "tool") and is_exec(b / ".git" / "hooks" / "pre-commit")
    assert held_lines(b) == []
    assert not (b / ".vsync" / "held").exists()
    assert not marker.exists()


def held_record(root: Path) -> list[str]:
    path = root / ".vsync" / "held"
    if not path.exists():
        return []
    return sorted(item["path"] for item in json.loads(path.read_text())["held"])


def test_a_held_path_changed_by_hand_is_an_ordinary_change(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    hostile_origin(a, tmp_path / "PWNED")
    run_vsync("clone", a, b, cwd=tmp_path)
    assert held_record(b) == sorted(HELD)
    write(b, ".git/config", "[core]\n\tbare = false\n")  # the user's own config
    (b / ".git" / "tool").chmod(0o755)  # ... and exec bit
    lines = held_lines(b)
    assert " M .git/config" in lines and "!H .git/config" not in lines
    assert not any(line.endswith(" .git/tool") for line in lines)  # as HEAD has it now
    run_vsync("commit", "-m", "mine", cwd=b)
    assert head_flat(b)[".git/config"] != head_flat(a)[".git/config"]
    rest = sorted(set(HELD) - {".git/config", ".git/tool"})
    assert held_lines(b) == [f"!H {rel}" for rel in rest]
    assert held_record(b) == rest
    # checking out a commit without them ends their holds; the folder is that commit
    first = run_vsync("log", "--oneline", cwd=b).stdout.splitlines()[-1].split()[0]
    run_vsync("checkout", first, cwd=b)
    assert held_record(b) == []
    assert sorted(os.listdir(b)) == [".vsync", "notes.txt"]
    # back at HEAD they are held again, with one warning; the rule goes by path, not by
    # who wrote the content, so this copy's own committed config is held too
    out = run_vsync("checkout", "HEAD", cwd=b)
    assert len(warning_lines(out.stderr)) == 1
    assert held_record(b) == sorted(HELD)
    assert held_lines(b) == [f"!H {rel}" for rel in sorted(HELD)]
    assert not (b / ".git" / "config").exists()


def test_a_merge_holds_back_what_git_would_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    run_vsync("init", cwd=a)
    write(a, "notes.txt", "one\n")
    write(a, ".git/HEAD", "ref: refs/heads/main\n")
    run_vsync("commit", "-m", "first", cwd=a)
    run_vsync("clone", a, b, cwd=tmp_path)
    write(a, ".git/hooks/post-merge", "#!/bin/sh\ntouch PWNED\n", exec_bit=True)
    write(a, ".git/config", "[core]\n\tfsmonitor = touch PWNED\n")
    write(a, ".git/packed-refs", "# pack-refs\n", exec_bit=True)
    run_vsync("commit", "-m", "theirs", cwd=a)
    write(b, "other.txt", "mine\n")
    run_vsync("commit", "-m", "ours", cwd=b)
    out = run_vsync("pull", cwd=b)  # diverged: a merge writes the folder
    [warning] = warning_lines(out.stderr)
    for rel in (".git/hooks/post-merge", ".git/config", ".git/packed-refs"):
        assert f"'{rel}'" in warning
    assert not (b / ".git" / "hooks").exists() and not (b / ".git" / "config").exists()
    assert not is_exec(b / ".git" / "packed-refs")
    assert held_lines(b) == [
        "!H .git/config",
        "!H .git/hooks/post-merge",
        "!H .git/packed-refs",
    ]
    merged = head_flat(b)
    theirs = head_flat(a)
    for rel in (".git/hooks/post-merge", ".git/config", ".git/packed-refs"):
        assert merged[rel] == theirs[rel]
    (b / "other.txt").write_text("after the merge\n")
    run_vsync("commit", "-m", "after", cwd=b)
    assert all(head_flat(b)[rel] == theirs[rel] for rel in (".git/config", ".git/packed-refs"))


def test_saving_an_old_hook_beside_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "a"
    hostile_origin(a, tmp_path / "PWNED")
    with Repository.open_path(a) as repo:
        [hook] = file_versions(repo, ".git/hooks/pre-commit")
        with pytest.raises(UsageError, match="git hook or config"):
            save_beside(repo, hook)
        [tool] = file_versions(repo, ".git/tool")
        saved = save_beside(repo, tool)
    assert not is_exec(a / saved)
    assert not any(p.name.startswith("pre-commit.") for p in (a / ".git" / "hooks").iterdir())
