"""git reads vsync's history cleanly: no warning from the git config vsync writes.

vsync used to write ``core.fsyncObjectFiles = true`` in ``.vsync/git/config``;
git 2.36+ warns on every command that it is deprecated for ``core.fsync``. A
new repository gets ``core.fsync``; an old one is settled the next time vsync
opens it (also when a killed writer left ``config.lock`` behind). Real git runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_vsync
from dulwich.config import ConfigFile

OLD_CORE = (
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"
    "\tfsyncObjectFiles = true\n\tlogAllRefUpdates = always\n"
)


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", f"--git-dir={root / '.vsync' / 'git'}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def git_version() -> tuple[int, ...]:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True)
    return tuple(int(p) for p in out.stdout.split()[2].split(".")[:2])


def core_keys(root: Path) -> dict[bytes, bytes]:
    cf = ConfigFile.from_path(str(root / ".vsync" / "git" / "config"))
    return {k.lower(): v for k, v in cf[(b"core",)].items()}


def assert_git_reads_cleanly(root: Path, subject: str) -> None:
    log = git(root, "log", "--format=%s")
    assert (log.stderr, log.stdout) == ("", f"{subject}\n")
    fsck = git(root, "fsck")
    assert fsck.stderr == "", fsck.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    (root / "a.txt").write_text("hello\n")
    run_vsync("commit", "-m", "first", cwd=root)
    return root


def test_a_new_repository_writes_core_fsync(repo: Path) -> None:
    keys = core_keys(repo)
    assert keys[b"fsync"] == b"objects,reference" and b"fsyncobjectfiles" not in keys
    assert_git_reads_cleanly(repo, "first")


@pytest.mark.parametrize("stale_lock", [False, True])
def test_an_old_repository_is_settled_on_open(repo: Path, stale_lock: bool) -> None:
    config = repo / ".vsync" / "git" / "config"
    config.write_text(OLD_CORE)
    if git_version() >= (2, 36):  # the warning this is about
        warned = git(repo, "log", "--format=%s")
        assert "core.fsyncObjectFiles is deprecated" in warned.stderr
    if stale_lock:  # a writer killed inside its config write left this
        (config.parent / "config.lock").write_text("half a config")
    out = run_vsync("log", "--oneline", cwd=repo)  # opening is enough
    assert out.stdout.endswith(" first\n")
    keys = core_keys(repo)
    assert keys[b"fsync"] == b"objects,reference" and b"fsyncobjectfiles" not in keys
    assert keys[b"logallrefupdates"] == b"always" and keys[b"bare"] == b"true"
    assert not (config.parent / "config.lock").exists()
    assert_git_reads_cleanly(repo, "first")
    (repo / "a.txt").write_text("hello again\n")
    run_vsync("commit", "-m", "second", cwd=repo)
    assert run_vsync("fsck", cwd=repo).returncode == 0


def test_a_kill_while_settling_leaves_the_old_config_and_the_next_open_settles_it(
    repo: Path,
) -> None:
    config = repo / ".vsync" / "git" / "config"
    config.write_text(OLD_CORE)
    killed = run_vsync(
        "log", "--oneline", cwd=repo, check=False, env={"VSYNC_FAULTS": "git-config-written=kill"}
    )
    assert killed.returncode == -9, killed.stderr
    assert config.read_text() == OLD_CORE  # the old config is whole
    assert (config.parent / "config.lock").exists()  # and the new one was not renamed over it
    out = run_vsync("log", "--oneline", cwd=repo)
    assert out.stdout.endswith(" first\n")
    keys = core_keys(repo)
    assert keys[b"fsync"] == b"objects,reference" and b"fsyncobjectfiles" not in keys
    assert not (config.parent / "config.lock").exists()
    assert_git_reads_cleanly(repo, "first")
