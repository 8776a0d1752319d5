"""The crash matrix's tools: a scene (folders and repositories) built once and
copied per run, a command killed at a named fault point or at a seeded random
moment of its work, and the checks made after every kill.

A scene is a folder holding ``work/`` (the working folder the command runs
in) and, for transfers, ``remote/`` (a bare repository reached as a path
remote). Its expected states come from one uninterrupted, traced run of the
command on a copy: which fault points it passes (and how often), how long its
work takes (from its first point to its exit), and what the folder and the refs
hold afterwards.

After each kill (:func:`check_after_kill`): ``fsck`` is clean on every
repository of the scene; every ref the command may move names its old or its
new commit (new commits compared by tree, as their ids carry a time); every
commit a ref names restores exactly (each file's content, streamed through
the verified chunks, hashes as it did when it was committed); every path of
the folder holds its old or its new content, compared by hash for all files,
and nothing else is there; then the same command, run again, completes and
leaves exactly the state of the uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conftest import VSYNC, racy_wait, wait_for_serve_exit

from vsync.model.gitdb import MODE_LINK
from vsync.model.repository import Repository
from vsync.model.snapshot import flatten
from vsync.ops.fsck import fsck

Hashes = dict[str, str]  # path -> sha256 of the content (a symlink: of "link:" + target)
REF = "refs/heads/main"
TRACKING = "refs/remotes/origin/main"


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.update(VSYNC_AUTHOR_NAME="Crash Test", VSYNC_AUTHOR_EMAIL="crash@example.com")
    e.update(VSYNC_HOST="crashhost")
    for name in ("VSYNC_DEBUG", "VSYNC_FAULTS", "VSYNC_FAULTS_TRACE"):
        e.pop(name, None)
    e.update(extra)
    return e


def vsync(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VSYNC, *args], cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=300
    )


def ok(cwd: Path, *args: str) -> str:
    r = vsync(cwd, *args)
    assert r.returncode == 0, f"vsync {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r.stdout


def folder_hashes(root: Path) -> Hashes:
    """Every file and symlink under ``root`` except ``.vsync``, by content hash."""
    out: Hashes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".vsync" in dirnames:
            dirnames.remove(".vsync")
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            out[rel] = digest.hexdigest()
    return out


def ref(repo_dir: Path, name: str = REF) -> str | None:
    """A ref's commit id (hex) read the way git does (loose file, then packed-refs)."""
    git = repo_dir / "git" if (repo_dir / "git").is_dir() else repo_dir / ".vsync" / "git"
    loose = git / name
    if loose.is_file():
        return loose.read_text().strip()
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            oid, _, refname = line.partition(" ")
            if refname == name:
                return oid
    return None


def commit_contents(repo_dir: Path, commit_hex: str) -> tuple[str, Hashes]:
    """A commit's tree id and every file's content hash, read through the
    repository's verified chunks (what a restore of that commit would write)."""
    with Repository.open_path(repo_dir) as repo:
        db = repo.gitdb
        tree = db.commit(commit_hex.encode()).tree
        out: Hashes = {}
        for path, (mode, oid) in flatten(db, tree).items():
            if mode == MODE_LINK:
                out[path] = "link:" + os.fsdecode(db.link_target(oid))
                continue
            digest = hashlib.sha256()
            for cid, length in db.manifest(oid).chunks:
                data = repo.chunks.read(cid)
                assert len(data) == length, f"{path}: chunk {cid.hex()} has the wrong length"
                digest.update(data)
            out[path] = digest.hexdigest()
        return tree.decode(), out


def parents(repo_dir: Path, commit_hex: str) -> list[str]:
    with Repository.open_path(repo_dir) as repo:
        return [p.decode() for p in repo.gitdb.commit(commit_hex.encode()).parents]


def fsck_problems(repo_dir: Path) -> list[str]:
    with Repository.open_path(repo_dir) as repo:
        return list(fsck(repo).problems)


@dataclass
class Watched:
    """A ref the command may move: in which repository, and its states."""

    repo: str  # "work" or "remote"
    name: str
    old: str | None  # commit id before
    new_tree: str | None = None  # tree of the commit it names after the uninterrupted run


@dataclass
class Scenario:
    """One command to crash. ``build(root)`` makes the scene in ``root`` and returns
    the values (commit ids) that ``{name}`` fields of ``args`` stand for."""

    name: str
    args: list[str]
    killed: str  # the vsync command whose process is killed: args[0], or "serve"
    build: Callable[[Path], dict[str, str]]
    refs: list[tuple[str, str]] = field(default_factory=lambda: [("work", REF)])
    # Run again, the command would act again (``undo`` redoes): once its refs have
    # landed it is complete, and the folder must already be its new state.
    toggles: bool = False


@dataclass
class Expected:
    folder_old: Hashes
    folder_new: Hashes
    refs: list[Watched]
    commits: dict[str, Hashes]  # tree id -> content hashes, for every tree a ref may name
    points: list[tuple[str, int]]  # (point, how many times) the killed process passes
    duration: float  # seconds from the first point to the exit of the killed process


@dataclass
class Outcome:
    how: str  # "point NAME@N" or "after S s"
    killed: bool  # the process died by SIGKILL (else it finished first)
    landed: bool  # the refs hold the new state after the kill


SETTLE = racy_wait()
"""How old a copy of a scene is before a command runs in it. Copying gives every file
a new inode and ctime, so the command hashes them again; one hashed within the racy
window of its ctime is not trusted, and a large file is then written whole instead of
rebuilt from the ranges it shares (the file-rebuilding points). Which of the two
happened depended on the machine's load: a reference run that rebuilt and a kill run
that did not failed the matrix by chance. Every run waits until its copy is this old."""


def copy_scene(template: Path, dest: Path) -> float:
    """A copy of the scene; path remotes in configs are rewritten to the copy's.
    Returns when it was complete (``time.monotonic()``), for :func:`settle`."""
    shutil.copytree(template, dest, symlinks=True)
    config = dest / "work" / ".vsync" / "config"
    if config.is_file():
        config.write_text(config.read_text().replace(str(template), str(dest)))
    return time.monotonic()


def settle(copied_at: float) -> None:
    """Wait until a copy made at ``copied_at`` is :data:`SETTLE` old."""
    time.sleep(max(0.0, copied_at + SETTLE - time.monotonic()))


def _repo_dir(root: Path, which: str) -> Path:
    return root / which


def _watched_state(root: Path, scenario: Scenario) -> list[Watched]:
    return [Watched(w, n, ref(_repo_dir(root, w), n)) for w, n in scenario.refs]


def expect(scenario: Scenario, template: Path, scratch: Path) -> Expected:
    """The uninterrupted, traced run, on a copy of the scene."""
    root = scratch / f"{scenario.name}-reference"
    copied_at = copy_scene(template, root)
    old_refs = _watched_state(root, scenario)
    folder_old = folder_hashes(root / "work")
    commits: dict[str, Hashes] = {}
    for w in old_refs:
        if w.old is not None:
            tree, contents = commit_contents(_repo_dir(root, w.repo), w.old)
            commits[tree] = contents
    trace = scratch / f"{scenario.name}.trace"
    settle(copied_at)
    r = vsync(root / "work", *scenario.args, VSYNC_FAULTS_TRACE=str(trace))
    assert r.returncode == 0, f"reference run of {scenario.name}: {r.stderr}"
    for w, after in zip(old_refs, _watched_state(root, scenario), strict=True):
        assert after.old is not None, f"{w.name} is gone after {scenario.name}"
        tree, contents = commit_contents(_repo_dir(root, w.repo), after.old)
        w.new_tree = tree
        commits[tree] = contents
    counts: dict[str, int] = {}
    start = end = 0.0
    for line in trace.read_text().splitlines():
        command, name, seconds = line.split()
        if command != scenario.killed:
            continue
        if name == "exit":
            end = float(seconds)
            continue
        if not counts:
            start = float(seconds)
        counts[name] = counts.get(name, 0) + 1
    assert counts, f"{scenario.killed} passed no fault point in {scenario.name}"
    return Expected(
        folder_old=folder_old,
        folder_new=folder_hashes(root / "work"),
        refs=old_refs,
        commits=commits,
        points=sorted(counts.items()),
        duration=max(end - start, 0.001),
    )


def kill_points(expected: Expected) -> list[tuple[str, int]]:
    """Every named point; a point passed many times at its first, middle and last pass."""
    out = []
    for name, count in expected.points:
        for nth in sorted({1, (count + 1) // 2, count}):
            out.append((name, nth))
    return out


def run_killed(scenario: Scenario, root: Path, faults: str, how: str) -> Outcome:
    proc = subprocess.run(
        [*VSYNC, *scenario.args],
        cwd=root / "work",
        env=env(VSYNC_FAULTS=faults),
        capture_output=True,
        text=True,
        timeout=300,
    )
    killed = proc.returncode == -signal.SIGKILL
    if not killed:
        # The serve a killed client started, or a client whose serve was killed,
        # must end with a clear error (never a traceback), or finish.
        assert "Traceback" not in proc.stderr, proc.stderr
    if scenario.killed == "serve" and not killed:
        killed = "Traceback" not in proc.stderr
    wait_for_serve_exit(root / "remote")
    return Outcome(how, killed, False)


def check_after_kill(
    scenario: Scenario, expected: Expected, root: Path, outcome: Outcome
) -> Outcome:
    where = f"{scenario.name}, killed at {outcome.how}"
    repos = {"work": root / "work"}
    if (root / "remote").is_dir():
        repos["remote"] = root / "remote"
    for which, path in repos.items():
        problems = fsck_problems(path)
        assert not problems, f"{where}: fsck of {which}: {problems}"
    landed = []
    for w in expected.refs:
        now = ref(_repo_dir(root, w.repo), w.name)
        if now == w.old:
            landed.append(False)
            continue
        assert now is not None, f"{where}: {w.repo} {w.name} is gone"
        tree, contents = commit_contents(_repo_dir(root, w.repo), now)
        assert tree == w.new_tree, f"{where}: {w.repo} {w.name} names an unknown tree"
        assert contents == expected.commits[tree], f"{where}: {w.name} does not restore exactly"
        landed.append(True)
    for w in expected.refs:  # the commits named before still restore exactly
        if w.old is not None:
            tree, contents = commit_contents(_repo_dir(root, w.repo), w.old)
            assert contents == expected.commits[tree], f"{where}: {w.old} no longer restores"
    folder = folder_hashes(root / "work")
    for path in sorted(set(folder) | set(expected.folder_old) | set(expected.folder_new)):
        allowed = {expected.folder_old.get(path), expected.folder_new.get(path)}
        assert folder.get(path) in allowed, (
            f"{where}: {path} holds neither its old nor its new content"
            f" ({'absent' if path not in folder else 'other content'})"
        )
    if scenario.toggles and landed and all(landed):
        assert folder == expected.folder_new, f"{where}: landed, but the folder is not new"
        return Outcome(outcome.how, outcome.killed, True)
    again = vsync(root / "work", *scenario.args)
    assert again.returncode == 0, (
        f"{where}: the same command again exited {again.returncode}: {again.stderr}"
    )
    assert folder_hashes(root / "work") == expected.folder_new, f"{where}: folder after rerun"
    for w in expected.refs:
        now = ref(_repo_dir(root, w.repo), w.name)
        assert now is not None
        assert commit_contents(_repo_dir(root, w.repo), now)[0] == w.new_tree, (
            f"{where}: {w.repo} {w.name} after the rerun"
        )
    for which, path in repos.items():
        problems = fsck_problems(path)
        assert not problems, f"{where}: fsck of {which} after the rerun: {problems}"
    return Outcome(outcome.how, outcome.killed, all(landed) and bool(landed))
