"""A commit killed with SIGKILL at random points never costs the previous commit.

The data set (a 200 MB random file plus a few hundred small files) is made
once per module. Each round starts from a copy of the repository as it was
after the previous commit, starts ``vsync commit`` and kills it after a
random delay between 0 and the duration of an uninterrupted commit of the
same change (stratified, so the whole range is covered), plus a few rounds
just around that duration, where the git pack is written and the branch
moves; the order is shuffled.
After every kill: fsck is clean, the previous commit's files come back
byte for byte, and the branch names either the previous commit or a
complete new one whose parent is the previous commit.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import VSYNC, run_vsync

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
BIG_MIB = 200
ROUNDS = 10
END_ROUNDS = 3
SEED = 20261125


@dataclass
class Scene:
    work: Path
    pristine: Path  # .vsync as it was right after the previous commit
    prev: str
    prev_files: list[str]
    new_files: list[str]
    big_sha256: str
    duration: float


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(VSYNC_AUTHOR_NAME="Crash Test", VSYNC_AUTHOR_EMAIL="crash@example.com")
    e.update(VSYNC_HOST="crashhost")
    e.pop("VSYNC_DEBUG", None)
    return e


def head(work: Path) -> str:
    return (work / ".vsync/git/refs/heads/main").read_text().strip()


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        while size:
            block = os.urandom(min(size, MiB))
            digest.update(block)
            f.write(block)
            size -= len(block)
    return digest.hexdigest()


def restore(scene: Scene) -> None:
    shutil.rmtree(scene.work / ".vsync")
    shutil.copytree(scene.pristine, scene.work / ".vsync")


def show_sha256(work: Path, spec: str) -> str:
    """sha256 of ``vsync show SPEC`` output, streamed (the big file never sits in memory)."""
    digest = hashlib.sha256()
    proc = subprocess.Popen(
        [*VSYNC, "show", spec], cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    for block in iter(lambda: proc.stdout.read(MiB), b""):  # type: ignore[union-attr]
        digest.update(block)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return digest.hexdigest()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("crash")
    work = root / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    (work / "old").mkdir()
    prev_files = ["medium.bin"]
    write_random(work / "medium.bin", 5 * MiB)
    for i in range(300):
        name = f"old/{i:03d}.txt"
        (work / name).write_bytes(os.urandom(rng.randint(0, 6000)))
        prev_files.append(name)
    run_vsync("commit", "-q", "-m", "previous", cwd=work, env=env())
    prev = head(work)
    pristine = root / "pristine"
    shutil.copytree(work / ".vsync", pristine)
    # the change every round's commit is killed in the middle of
    big_sha256 = write_random(work / "big.bin", BIG_MIB * MiB)
    (work / "new").mkdir()
    new_files = []
    for i in range(200):
        name = f"new/{i:03d}.dat"
        (work / name).write_bytes(os.urandom(rng.randint(0, 20000)))
        new_files.append(name)
    t0 = time.monotonic()
    run_vsync("commit", "-q", "-m", "uninterrupted", cwd=work, env=env())
    duration = time.monotonic() - t0
    s = Scene(work, pristine, prev, prev_files, new_files, big_sha256, duration)
    restore(s)
    return s


def test_killed_commits_leave_history_intact(scene: Scene) -> None:
    rng = random.Random(SEED + 1)
    delays = [(i + rng.random()) / ROUNDS * scene.duration for i in range(ROUNDS)]
    # and a few around the end, where the git pack is written and the branch moves
    delays += [scene.duration * rng.uniform(0.95, 1.3) for _ in range(END_ROUNDS)]
    rng.shuffle(delays)
    work = scene.work
    completed = 0
    for delay in delays:
        restore(scene)
        proc = subprocess.Popen(
            [*VSYNC, "commit", "-q", "-m", "killed"],
            cwd=work,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()  # SIGKILL; a no-op if the commit already finished
        proc.wait()
        r = run_vsync("fsck", cwd=work, check=False)
        assert r.returncode == 0, f"after a kill at {delay:.2f}s: {r.stdout}{r.stderr}"
        now = head(work)
        if now != scene.prev:
            # a complete new commit on top of the previous one (fsck verified its bytes)
            completed += 1
            last = (work / ".vsync/git/logs/refs/heads/main").read_text().splitlines()[-1]
            assert last.split(" ")[:2] == [scene.prev, now]
            assert r.stdout.startswith("fsck: checked 2 commits"), r.stdout
        else:
            assert r.stdout.startswith("fsck: checked 1 commit,"), r.stdout
        for path in ["medium.bin", *rng.sample(scene.prev_files[1:], 3)]:
            got = run_vsync("show", f"{scene.prev}:{path}", cwd=work).stdout_bytes
            assert got == (work / path).read_bytes(), f"{path} after a kill at {delay:.2f}s"
    assert completed < ROUNDS  # most kills land mid-commit

    # a normal commit over whatever the last kill left behind stores everything
    (work / "final.txt").write_text("final\n")
    run_vsync("commit", "-q", "-m", "final", cwd=work, env=env())
    assert show_sha256(work, "HEAD:big.bin") == scene.big_sha256
    for path in rng.sample(scene.new_files, 5):
        assert (
            run_vsync("show", f"HEAD:{path}", cwd=work).stdout_bytes == (work / path).read_bytes()
        )
    r = run_vsync("fsck", cwd=work)
    assert "no problems" in r.stdout
