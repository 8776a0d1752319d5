"""Push to S3: ``vsync push`` to an encrypted ``s3://`` remote against ``restic backup``
to an ``s3:`` repository, both on one local SeaweedFS (issue 16).

The scenario of the SSH push (bench/push_ssh.py): one folder holding the 1 GiB
incompressible file and the 1 GiB log-text file (64 MiB each with
``--quick``), then the same two files each with 10 bytes inserted in the middle.
Each run uses a fresh prefix of one bucket; the median of the runs is shown.

- initial: vsync ``push --porcelain`` to a new encrypted remote
  (``init --bare --encrypted --scrypt-log2n 10``, not timed) from a repository
  where the files are already committed (the commit is not timed); restic
  ``backup`` of the folder into a new repository (``init``, not timed).
- incremental: the modified files in place of the old ones; vsync ``commit``
  (not timed) then ``push``; restic ``backup`` again (its scan and chunking
  are part of its backup, as vsync's are of its commit: the vsync column with
  the commit shows both).

Bytes are what the bucket gained: the sizes of the objects under the tool's
prefix, listed before and after (what was PUT and kept; both tools write
each object once). Time is wall-clock around the client process.

    .venv/bin/python bench/push_s3.py [--quick] [--write-doc] [--runs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import datagen  # noqa: E402
import push_ssh  # noqa: E402
from measure import Target, ensure_command, verdict  # noqa: E402
from report import human, vsync_version, warm, write_section  # noqa: E402

HEADING = "## Push to S3 (issue 16)"
BUCKET = "bench"
VSYNC = [sys.executable, "-m", "vsync"]
PASSWORD = "bench passphrase"


def load_test_helper(name: str) -> ModuleType:
    """``tests/NAME.py``, imported by path (tests/ is not a package)."""
    key = f"vsync_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    tests = str(REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)  # seaweed.py imports sshd.py
    spec = importlib.util.spec_from_file_location(key, REPO_ROOT / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Step:
    seconds: list[float] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    folders: list[dict[str, int]] = field(default_factory=list)  # vsync: bytes by folder
    extra: list[float] = field(default_factory=list)  # vsync: the commit before the push

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_bytes(self) -> int:
        return int(statistics.median(self.stored))


def prefix_bytes(env: dict[str, str], prefix: str) -> int:
    return sum(bytes_by_folder(env, prefix).values())


def bytes_by_folder(env: dict[str, str], prefix: str) -> dict[str, int]:
    """The bytes of the objects under ``prefix``, by the first folder of their names
    (vsync: packs, index, git, ...; a name with no folder counts under itself)."""
    from vsync.sync.objstore.s3 import S3Store
    from vsync.sync.objstore.s3config import s3_settings
    from vsync.sync.url import parse_url

    store = S3Store(parse_url(f"s3://{BUCKET}/{prefix}"), s3_settings(environ=env))
    import obstore

    out: dict[str, int] = {}
    for page in obstore.list(store.client, prefix=prefix):
        for meta in page:
            folder = str(meta["path"]).removeprefix(prefix).strip("/").split("/")[0]
            out[folder] = out.get(folder, 0) + int(meta["size"])
    return out


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed: {cmd}\n{proc.stderr}")
    return seconds, proc.stdout


def place(files: list[tuple[Path, str]], folder: Path) -> None:
    for src, name in files:
        target = folder / name
        if target.exists():
            target.unlink()
        if src.stat().st_dev == folder.stat().st_dev:
            os.link(src, target)  # the cached input, not copied (vsync and restic only read)
        else:
            shutil.copy(src, target)


def vsync_run(
    n: int, work: Path, env: dict[str, str], originals: list[tuple[Path, str]],
    modified: list[tuple[Path, str]], initial: Step, incremental: Step,
) -> None:  # fmt: skip
    prefix = f"vsync-{n}"
    url = f"s3://{BUCKET}/{prefix}"
    folder = work / f"vsync-{n}"
    folder.mkdir()
    timed([*VSYNC, "init", "--bare", "--encrypted", "--scrypt-log2n", "10", url], work, env)
    timed([*VSYNC, "init"], folder, env)
    place(originals, folder)
    commit_s, _ = timed([*VSYNC, "commit", "-q", "-m", "initial"], folder, env)
    initial.extra.append(commit_s)
    timed([*VSYNC, "remote", "add", "origin", url], folder, env)
    seconds, _ = timed([*VSYNC, "push", "--porcelain"], folder, env)
    initial.seconds.append(seconds)
    folders = bytes_by_folder(env, prefix)
    initial.folders.append(folders)
    initial.stored.append(sum(folders.values()))
    place(modified, folder)
    commit_s, _ = timed([*VSYNC, "commit", "-q", "-m", "ten bytes"], folder, env)
    before = prefix_bytes(env, prefix)
    seconds, _ = timed([*VSYNC, "push", "--porcelain"], folder, env)
    incremental.seconds.append(seconds)
    incremental.extra.append(commit_s)
    incremental.stored.append(prefix_bytes(env, prefix) - before)
    shutil.rmtree(folder)


def restic_run(
    n: int, work: Path, env: dict[str, str], endpoint: str, originals: list[tuple[Path, str]],
    modified: list[tuple[Path, str]], initial: Step, incremental: Step,
) -> None:  # fmt: skip
    prefix = f"restic-{n}"
    env = {**env, "RESTIC_REPOSITORY": f"s3:{endpoint}/{BUCKET}/{prefix}"}
    env["RESTIC_PASSWORD"] = PASSWORD
    folder = work / f"restic-{n}"
    folder.mkdir()
    place(originals, folder)
    timed(["restic", "init"], work, env)
    before = prefix_bytes(env, prefix)
    seconds, _ = timed(["restic", "backup", "--quiet", "."], folder, env)
    initial.seconds.append(seconds)
    initial.stored.append(prefix_bytes(env, prefix) - before)
    place(modified, folder)
    before = prefix_bytes(env, prefix)
    seconds, _ = timed(["restic", "backup", "--quiet", "."], folder, env)
    incremental.seconds.append(seconds)
    incremental.stored.append(prefix_bytes(env, prefix) - before)
    shutil.rmtree(folder)


def main(quick: bool, runs: int, update_docs: bool) -> tuple[str, list[Target], dict[str, Any]]:
    ensure_command("restic", "restic")
    inputs = push_ssh.inputs(quick)
    for inp in inputs:
        datagen.ensure(inp.path, inp.kind, inp.seed, inp.size)
        push_ssh.ensure_modified(inp)
    originals = [(inp.path, push_ssh.name_of(inp)) for inp in inputs]
    modified = [(inp.modified, push_ssh.name_of(inp)) for inp in inputs]
    warm(*(p for p, _ in originals + modified))
    seaweed = load_test_helper("seaweed")
    steps = {tool: (Step(), Step()) for tool in ("vsync", "restic")}
    with tempfile.TemporaryDirectory(prefix="vsync-bench-s3-", dir=push_ssh.DATA_DIR) as tmp:
        work = Path(tmp)
        # room for every run of both tools (the tests' 16 volumes of 256 MiB hold 4 GiB;
        # three runs of two tools store about 8 GiB): volume files are sparse
        server = seaweed.start_seaweed(work / "seaweed", volumes=64)
        try:
            server.make_bucket(BUCKET)
            version = server.version().removeprefix("version ")
            env = {**os.environ, **server.env(), "VSYNC_PASSWORD": PASSWORD}
            env.pop("VSYNC_FAULTS", None)
            for n in range(runs):
                vsync_run(n, work, env, originals, modified, *steps["vsync"])
                restic_run(n, work, env, server.endpoint, originals, modified, *steps["restic"])
                print(f"run {n + 1}/{runs} done", flush=True)
        finally:
            server.stop()
    results = {
        tool: {
            "initial_s": a.median_s,
            "initial_bytes": a.median_bytes,
            "incremental_s": b.median_s,
            "incremental_bytes": b.median_bytes,
            "initial_commit_s": statistics.median(a.extra) if a.extra else 0.0,
            "commit_s": statistics.median(b.extra) if b.extra else 0.0,
            # the folders of the run whose initial bytes are the median
            "initial_folders": next(
                (f for f in a.folders if sum(f.values()) == a.median_bytes), {}
            ),
        }
        for tool, (a, b) in steps.items()
    }
    print(json.dumps(results, indent=1))
    text = report(results, inputs, runs, version, quick)
    print(text)
    if update_docs and not quick:
        write_section(HEADING, text)
    return text, targets(results, inputs), results


def targets(results: dict[str, Any], inputs: list[Any]) -> list[Target]:
    """Issue 16's targets: vsync at least as fast as restic backing up to the same
    server (vsync's commit counted, as restic's scan and chunking are) and storing no
    more bytes, for the initial push and for the push after the 10-byte insertions."""
    v, r = results["vsync"], results["restic"]
    scen = f"o. push 2 x {human(inputs[0].size)} to an encrypted S3 remote on SeaweedFS"
    out = []
    for step, key, commit in (
        ("initial", "initial", "initial_commit_s"),
        ("after the 10-byte insertions", "incremental", "commit_s"),
    ):
        t = (v[f"{key}_s"] + v[commit]) / r[f"{key}_s"]
        b = v[f"{key}_bytes"] / max(r[f"{key}_bytes"], 1)
        out += [
            Target(f"{scen}: {step}", "vsync commit + push time / restic backup time",
                   f"{t:.2f}", "<= 1", verdict(t, 1.0, False)),
            Target(f"{scen}: {step}", "vsync bytes stored / restic bytes stored",
                   f"{b:.4f}", "<= 1", verdict(b, 1.0, False)),
        ]  # fmt: skip
    return out


def head_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    return out.stdout.strip() or "?"


def report(results: dict[str, Any], inputs: list[Any], runs: int, server: str, quick: bool) -> str:
    v, r = results["vsync"], results["restic"]
    size = human(inputs[0].size)
    restic = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.split()
    lines = [
        HEADING,
        "",
        f"`bench/push_s3.py{' --quick' if quick else ''}` at {head_commit()} "
        f"(vsync {vsync_version()}), "
        f"restic {restic[1] if len(restic) > 1 else '?'}, SeaweedFS {server} (`weed server` "
        f"with its S3 gateway on 127.0.0.1, tests/seaweed.py); median of {runs} runs. "
        f"The folder: a {size} incompressible file and a {size} log-text file; then each "
        "with 10 bytes inserted in the middle. vsync pushes to an encrypted remote "
        "(`s3://bucket/prefix`), restic backs up to an `s3:` repository (encrypted too). "
        "Bytes: what the tool's prefix of the bucket gained. restic's time includes reading "
        "and chunking the folder; vsync does that in its commit, shown beside its push.",
        "",
        "| step | vsync | restic | vsync / restic |",
        "|---|---:|---:|---:|",
        f"| initial push, time | {v['initial_s']:.2f} s (+ {v['initial_commit_s']:.2f} s "
        f"commit) | {r['initial_s']:.2f} s | {v['initial_s'] / r['initial_s']:.2f} "
        f"({(v['initial_s'] + v['initial_commit_s']) / r['initial_s']:.2f} with the commit) |",
        f"| initial push, bytes stored | {v['initial_bytes']:,} B ({human(v['initial_bytes'])}) | "
        f"{r['initial_bytes']:,} B ({human(r['initial_bytes'])}) | "
        f"{v['initial_bytes'] / r['initial_bytes']:.4f} |",
        f"| after the 10-byte insertions, time | {v['incremental_s']:.2f} s "
        f"(+ {v['commit_s']:.2f} s commit) | {r['incremental_s']:.2f} s | "
        f"{v['incremental_s'] / r['incremental_s']:.2f} "
        f"({(v['incremental_s'] + v['commit_s']) / r['incremental_s']:.2f} with the commit) |",
        f"| after the 10-byte insertions, bytes stored | {v['incremental_bytes']:,} B "
        f"({human(v['incremental_bytes'])}) | {r['incremental_bytes']:,} B "
        f"({human(r['incremental_bytes'])}) | "
        f"{v['incremental_bytes'] / max(r['incremental_bytes'], 1):.4f} |",
    ]
    folders = v.get("initial_folders") or {}
    if folders:
        parts = ", ".join(f"{name} {n:,} B" for name, n in sorted(folders.items()))
        lines += ["", f"vsync's initial bytes by folder of the remote: {parts}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--write-doc", action="store_true")
    a = ap.parse_args()
    main(a.quick, a.runs or (1 if a.quick else 3), a.write_doc)
