"""Clone and fast-forward pull write the working files while their chunks arrive
(vsync.model.prefill, vsync.sync.folder_fill): exact content, shared chunks, a bad
chunk, a kill in the middle, flat memory."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from conftest import VSYNC, RemoteKind, Run, run_vsync, snapshot_tree, wait_for_serve_exit
from hostile_peer import maxrss_of

MIB = 1 << 20
TEMP = ".vsync-tmp-"


def _rng_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_source(root: Path) -> None:
    """Files of several chunks (each over the 1 MiB that is filled as it arrives), with
    chunks repeated within a file and across files."""
    root.mkdir()
    run_vsync("init", cwd=root)
    shared = _rng_bytes(1, 2 * MIB)
    (root / "big.bin").write_bytes(_rng_bytes(2, 3 * MIB))
    (root / "rep").mkdir()
    (root / "rep" / "again.bin").write_bytes(shared * 3)  # its chunks repeat within it
    (root / "rep" / "copy.bin").write_bytes(shared + _rng_bytes(3, 500_000))  # and across
    (root / "zeros.bin").write_bytes(bytes(3 * MIB))  # one chunk, many times at once
    (root / "run.bin").write_bytes(_rng_bytes(4, 3 * MIB // 2))
    (root / "run.bin").chmod(0o755)
    (root / "small.txt").write_text("small\n")
    os.symlink("small.txt", root / "link")
    run_vsync("commit", "-m", "first", cwd=root)


def change_source(root: Path) -> None:
    """A second commit: new large files (one of chunks the receiver already has), a
    rewritten one, a deleted one."""
    shared = _rng_bytes(1, 2 * MIB)
    (root / "new").mkdir()
    (root / "new" / "fresh.bin").write_bytes(_rng_bytes(5, 2 * MIB + 12345))
    # new chunks around ones the receiver has: holes in the middle
    (root / "new" / "known.bin").write_bytes(
        _rng_bytes(7, 300_000) + shared + shared + _rng_bytes(8, 300_000)
    )
    (root / "big.bin").write_bytes(_rng_bytes(6, 3 * MIB))
    (root / "small.txt").unlink()
    (root / "link").unlink()
    run_vsync("commit", "-m", "second", cwd=root)


def digests(root: Path) -> dict[str, tuple[str, bool]]:
    """Every file and symlink but .vsync: content hash and exec bit."""
    return {
        path: (hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest(), x)
        for path, (_kind, data, x) in snapshot_tree(root).items()
    }


def temps_in(root: Path) -> list[str]:
    """Temporary files of a folder writer anywhere in the folder, and any journal of
    a writer that fills files as they arrive."""
    found = [os.path.join(d, n) for d, _dirs, names in os.walk(root) for n in names if TEMP in n]
    control = root / ".vsync"
    if control.is_dir():
        found += [n for n in os.listdir(control) if n.startswith("folder-temps-")]
    return found


def env_with(remote: RemoteKind, **extra: str) -> dict[str, str]:
    return {**(remote.env or {}), **extra}


def traced(remote: RemoteKind, trace: Path, *args: str | Path, cwd: Path, **kw: str) -> Run:
    env = env_with(remote, VSYNC_FAULTS_TRACE=str(trace), **kw)
    return run_vsync(*args, *remote.cmd(), cwd=cwd, env=env, check=False)


def points(trace: Path, command: str) -> set[str]:
    if not trace.exists():
        return set()
    return {line.split()[1] for line in trace.read_text().splitlines() if line.startswith(command)}


def fsck_clean(path: Path) -> None:
    out = run_vsync("fsck", cwd=path, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_clone_and_pull_fill_files_as_chunks_arrive(remote: RemoteKind, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make_source(src)
    trace = tmp_path / "trace"
    out = traced(remote, trace, "clone", remote.url(src), dest, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"file-filling", "files-filled"} <= points(trace, "clone")
    assert digests(dest) == digests(src)
    assert temps_in(dest) == []
    fsck_clean(dest)

    change_source(src)
    trace.unlink()
    out = traced(remote, trace, "pull", cwd=dest)
    assert out.returncode == 0, out.stderr
    assert {"file-filling", "files-filled"} <= points(trace, "pull")
    assert digests(dest) == digests(src)
    assert temps_in(dest) == []
    status = run_vsync("status", "--porcelain", cwd=dest)
    assert status.stdout == ""
    fsck_clean(dest)


def test_a_bad_chunk_leaves_the_folder_untouched(remote: RemoteKind, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make_source(src)
    trace = tmp_path / "trace"
    evil = remote.cmd("bad-chunk:late")
    out = run_vsync(
        "clone", remote.url(src), dest, *evil, cwd=tmp_path, check=False,
        env=env_with(remote, VSYNC_FAULTS_TRACE=str(trace)),
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "do not match its id" in out.stderr and "Traceback" not in out.stderr
    assert "file-filling" in points(trace, "clone")  # files were being filled
    assert not dest.exists()

    run_vsync("clone", remote.url(src), dest, *remote.cmd(), cwd=tmp_path, env=remote.env)
    change_source(src)
    before = digests(dest)
    head = run_vsync("log", "--oneline", cwd=dest).stdout
    trace.unlink()
    out = run_vsync(
        "pull", *evil, cwd=dest, check=False,
        env=env_with(remote, VSYNC_FAULTS_TRACE=str(trace)),
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "file-filling" in points(trace, "pull")
    assert digests(dest) == before
    assert temps_in(dest) == []
    assert not (dest / "new").exists()  # the folder made for the new files went again
    assert run_vsync("log", "--oneline", cwd=dest).stdout == head
    fsck_clean(dest)
    run_vsync("pull", *remote.cmd(), cwd=dest, env=remote.env)
    assert digests(dest) == digests(src)


@pytest.mark.parametrize("point", ["file-filling@3", "files-filled"])
@pytest.mark.parametrize("command", ["clone", "pull"])
def test_a_killed_receive_leaves_whole_files(
    remote: RemoteKind, tmp_path: Path, command: str, point: str
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make_source(src)
    if command == "pull":
        run_vsync("clone", remote.url(src), dest, *remote.cmd(), cwd=tmp_path, env=remote.env)
        old = digests(dest)
        change_source(src)
        args: list[str | Path] = ["pull"]
        cwd = dest
    else:
        old = {}
        args = ["clone", remote.url(src), dest]
        cwd = tmp_path
    name, _, nth = point.partition("@")
    fault = f"{command}/{name}=kill" + (f"@{nth}" if nth else "")
    out = run_vsync(
        *args, *remote.cmd(), cwd=cwd, check=False, env=env_with(remote, VSYNC_FAULTS=fault)
    )
    assert out.returncode == -9, out.stderr
    wait_for_serve_exit(src)
    new = digests(src)
    left = {p: d for p, d in digests(dest).items() if TEMP not in p}
    for path, digest in left.items():  # only whole files: each the old or the new one
        assert digest in (old.get(path), new.get(path)), path
    assert left == old  # nothing was renamed before the branch moved
    assert temps_in(dest), "the kill did not land while files were being filled"

    run_vsync("pull", *remote.cmd(), cwd=dest, env=remote.env)
    assert digests(dest) == new
    assert temps_in(dest) == []
    fsck_clean(dest)


@pytest.mark.slow
def test_clone_memory_stays_flat(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    run_vsync("init", cwd=src)
    rng = random.Random(9)
    with open(src / "large.bin", "wb") as f:
        for _ in range(300 // 4):
            f.write(rng.randbytes(4 * MIB))
    run_vsync("commit", "-m", "large", cwd=src)
    env = {**os.environ, "VSYNC_FAULTS_TRACE": str(tmp_path / "trace")}
    env.update(VSYNC_AUTHOR_NAME="t", VSYNC_AUTHOR_EMAIL="t@e", VSYNC_HOST="h")
    rc, _out, err, peak = maxrss_of([*VSYNC, "clone", str(src), str(dest)], tmp_path, env)
    assert rc == 0, err
    assert "file-filling" in points(tmp_path / "trace", "clone")
    assert peak < 150, f"clone of a 300 MiB file peaked at {peak:.0f} MiB"
    assert (dest / "large.bin").stat().st_size == 300 * MIB
    fsck_clean(dest)
