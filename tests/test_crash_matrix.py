"""Every command that writes, killed with SIGKILL at each of its fault points and
at 50 seeded random moments of its work, loses nothing (issue 12).

Each scenario's scene is built once; each run works on a copy of it. For the
points: every point the killed process passes in an uninterrupted run (a
point passed many times: its first, middle and last pass). For the moments:
a timer armed at the first point the killed process passes kills it after a
delay drawn (seed ``SEED``) from the length of its uninterrupted work plus a
tenth. What is checked after every kill is in :mod:`crashkit`.

Runs go two at a time (the machine has two cores and most of a run is a
subprocess starting). With ``VSYNC_RELIABILITY_OUT=DIR`` each scenario's
figures are written to ``DIR/NAME.json`` for ``docs/reliability.md``
(``make reliability``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from crashkit import (
    REF,
    TRACKING,
    Outcome,
    Scenario,
    check_after_kill,
    copy_scene,
    expect,
    kill_points,
    ok,
    ref,
    run_killed,
    settle,
    vsync,
)

pytestmark = pytest.mark.slow

SEED = 20261205
MOMENTS = 50
WORKERS = 2
LOOKAHEAD = 6  # scene copies made ahead of their runs
KiB = 1024


# -- scenes -----------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def populate(work: Path, seed: int) -> None:
    """Two dozen small files in a few folders, a 1.5 MiB file, a symlink, an exec file."""
    rng = random.Random(seed)
    for i in range(24):
        folder = ("a", "b/c", "d")[i % 3]
        _write(work / folder / f"f{i}.txt", rng.randbytes(rng.randrange(1, 8 * KiB)))
    _write(work / "big.bin", rng.randbytes(1536 * KiB))
    (work / "tool.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (work / "tool.sh").chmod(0o755)
    (work / "link").symlink_to("a/f0.txt")


def edit(work: Path, seed: int, folders: tuple[str, ...] = ("a", "b/c", "d")) -> None:
    """Change, add and delete files in ``folders``; rewrite the middle of big.bin."""
    rng = random.Random(seed)
    for folder in folders:
        files = sorted((work / folder).glob("*.txt"))
        for f in files[:2]:
            f.write_bytes(rng.randbytes(rng.randrange(1, 8 * KiB)))
        files[-1].unlink()
        _write(work / folder / f"new{seed}.txt", rng.randbytes(3 * KiB))
    if "a" in folders:
        big = bytearray((work / "big.bin").read_bytes())
        big[700 * KiB : 760 * KiB] = rng.randbytes(60 * KiB)
        (work / "big.bin").write_bytes(bytes(big))


def head(work: Path) -> str:
    commit = ref(work)
    assert commit is not None
    return commit


def solo(root: Path) -> Path:
    work = root / "work"
    work.mkdir()
    ok(work, "init")
    populate(work, 1)
    ok(work, "commit", "-q", "-m", "first")
    return work


def with_remote(root: Path) -> tuple[Path, Path]:
    """``remote`` (bare) holding the first commit, ``work`` a clone of it, and
    ``other``, a second clone, for changes made elsewhere."""
    ok(root, "init", "--bare", "remote")
    first = solo(root)
    ok(first, "remote", "add", "origin", str(root / "remote"))
    ok(first, "push", "-q")
    ok(root, "clone", "-q", str(root / "remote"), "other")
    return first, root / "other"


def build_commit(root: Path) -> dict[str, str]:
    edit(solo(root), 2)
    return {}


def build_push(root: Path) -> dict[str, str]:
    work, _other = with_remote(root)
    edit(work, 2)
    ok(work, "commit", "-q", "-m", "second")
    return {}


def build_fetch(root: Path) -> dict[str, str]:
    _work, other = with_remote(root)
    edit(other, 3)
    # a new large file in a new folder: a pull fills it as its chunks arrive (prefill)
    _write(other / "e" / "fresh.bin", random.Random(5).randbytes(1536 * KiB))
    ok(other, "commit", "-q", "-m", "theirs")
    ok(other, "push", "-q")
    return {}


def build_merge(root: Path) -> dict[str, str]:
    work, other = with_remote(root)
    edit(other, 3, folders=("b/c",))
    ok(other, "commit", "-q", "-m", "theirs")
    ok(other, "push", "-q")
    edit(work, 4, folders=("a", "d"))
    ok(work, "commit", "-q", "-m", "ours")
    ok(work, "fetch", "-q")
    return {}


def build_two_commits(root: Path) -> dict[str, str]:
    work = solo(root)
    first = head(work)
    edit(work, 2)
    ok(work, "commit", "-q", "-m", "second")
    return {"first": first}


def build_undo(root: Path) -> dict[str, str]:
    work = solo(root)
    first = head(work)
    edit(work, 2)
    ok(work, "commit", "-q", "-m", "second")
    ok(work, "revert-to", first)
    return {}


def build_gc(root: Path) -> dict[str, str]:
    work = solo(root)
    edit(work, 2)
    # A commit killed once its chunk pack is complete: chunks no commit needs.
    r = vsync(work, "commit", "-m", "lost", VSYNC_FAULTS="commit/temp-pack-sealing=kill")
    assert r.returncode == -9, r.stderr
    ok(work, "commit", "-q", "-m", "second")
    edit(work, 5)
    ok(work, "commit", "-q", "-m", "third")
    return {}


SCENARIOS = [
    Scenario("commit", ["commit", "-m", "next"], "commit", build_commit),
    Scenario(
        "push",
        ["push"],
        "push",
        build_push,
        refs=[("remote", REF), ("work", TRACKING)],
    ),
    Scenario(
        "push-server",
        ["push"],
        "serve",
        build_push,
        refs=[("remote", REF), ("work", TRACKING)],
    ),
    Scenario("fetch", ["fetch"], "fetch", build_fetch, refs=[("work", TRACKING)]),
    Scenario("fetch-server", ["fetch"], "serve", build_fetch, refs=[("work", TRACKING)]),
    # build_fetch's edit deletes or overwrites 9 of 27 files: past the mass-change guard
    Scenario(
        "pull",
        ["pull", "--allow-mass-change"],
        "pull",
        build_fetch,
        refs=[("work", REF), ("work", TRACKING)],
    ),
    Scenario("merge", ["merge"], "merge", build_merge),
    Scenario("checkout", ["checkout", "{first}"], "checkout", build_two_commits),
    Scenario("restore", ["restore", "-s", "{first}", "a"], "restore", build_two_commits),
    Scenario("revert-to", ["revert-to", "{first}"], "revert-to", build_two_commits),
    Scenario("undo", ["undo"], "undo", build_undo, toggles=True),
    Scenario("gc", ["gc", "-q"], "gc", build_gc),
]


# -- the runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


def _plan(expected_points: list[tuple[str, int]], duration: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    plans = [f"point {name}@{nth}" for name, nth in expected_points]
    plans += [f"after {rng.uniform(0, duration * 1.1):.4f}" for _ in range(MOMENTS)]
    return plans


def _faults(scenario: Scenario, plan: str) -> str:
    kind, _, what = plan.partition(" ")
    if kind == "point":
        name, _, nth = what.partition("@")
        return f"{scenario.killed}/{name}=kill@{nth}"
    return f"{scenario.killed}/*=kill-after:{what}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_command_killed_anywhere_loses_nothing(scenario: Scenario, scratch: Path) -> None:
    template = scratch / f"{scenario.name}-scene"
    template.mkdir()
    values = scenario.build(template)
    scenario = dataclasses.replace(scenario, args=[a.format(**values) for a in scenario.args])
    expected = expect(scenario, template, scratch)
    seed = SEED + sum(map(ord, scenario.name))
    plans = _plan(kill_points(expected), expected.duration, seed)

    # The copies are made ahead of their runs (at most LOOKAHEAD waiting) by one
    # thread, so that each is SETTLE old when its run starts without a wait per run.
    room = threading.Semaphore(LOOKAHEAD)

    def prepare(i: int) -> float:
        room.acquire()
        return copy_scene(template, scratch / f"{scenario.name}-{i}")

    def one(i: int, plan: str) -> Outcome:
        root = scratch / f"{scenario.name}-{i}"
        try:
            settle(copies[i].result())
            outcome = run_killed(scenario, root, _faults(scenario, plan), plan)
            return check_after_kill(scenario, expected, root, outcome)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            room.release()

    with ThreadPoolExecutor(1) as copier, ThreadPoolExecutor(WORKERS) as pool:
        copies = [copier.submit(prepare, i) for i in range(len(plans))]
        outcomes = list(pool.map(one, range(len(plans)), plans))
    points = [o for o in outcomes if o.how.startswith("point")]
    assert all(o.killed for o in points), [o.how for o in points if not o.killed]
    killed = sum(o.killed for o in outcomes)
    # The moments must really land inside the work, not all before or after it.
    assert killed >= MOMENTS // 3 + len(points), f"only {killed} of {len(outcomes)} runs killed"
    _report(scenario, expected.points, expected.duration, outcomes, seed)


def _report(
    scenario: Scenario,
    points: list[tuple[str, int]],
    duration: float,
    outcomes: list[Outcome],
    seed: int,
) -> None:
    out = os.environ.get("VSYNC_RELIABILITY_OUT")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {
        "scenario": scenario.name,
        "command": "vsync " + " ".join(scenario.args),
        "killed_process": scenario.killed,
        "points": [f"{name} x{count}" for name, count in points],
        "seed": seed,
        "work_seconds": round(duration, 3),
        "runs": len(outcomes),
        "killed": sum(o.killed for o in outcomes),
        "landed": sum(o.landed for o in outcomes),
        "point_runs": sum(o.how.startswith("point") for o in outcomes),
        "moment_runs": sum(o.how.startswith("after") for o in outcomes),
        "result": "passed",
    }
    (Path(out) / f"{scenario.name}.json").write_text(json.dumps(figures, indent=1) + "\n")
