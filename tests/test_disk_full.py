"""A full disk is not damage: commit, fetch, pull, checkout and gc on a small tmpfs.

Each test mounts a tmpfs of a few MiB (the tests run as root here and in CI),
fills it, runs the command and checks: exit 1 with one line saying the disk
is full and what was being written; nothing set aside as damaged; no
temporary file left (temp packs, unfinished git packs, lock files, anything
under incoming/); fsck never calls it damage, not even while the disk is
still full; and once space is freed, fsck is clean and the same command
completes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Run, run_vsync

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs mounted on a fresh folder; unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` with one file until only ``leave`` bytes are free; returns it."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    size = st.f_bavail * st.f_frsize - leave
    assert size > 0, "the test data does not leave room to fill"
    with open(filler, "wb") as f:
        block = b"\0" * MiB
        while size > 0:
            f.write(block[: min(size, MiB)])
            size -= MiB
    return filler


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_full_disk_error(r: Run, *writing: str) -> None:
    """Exit 1, one line, "disk full" naming one of ``writing`` (what filled it first
    depends on timing: a chunk pack or the chunk index's journal)."""
    rc, err = r.returncode, r.stderr
    assert rc == 1, (rc, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "the disk is full: could not write" in err, err
    assert not writing or any(w in err for w in writing), err
    assert "damaged" not in err, err


def assert_tidy(control: Path) -> None:
    """Nothing set aside, no temporary file left behind."""
    assert not [p.name for p in control.iterdir() if ".damaged-" in p.name]
    assert not list((control / "chunks").glob("*.tmp"))
    pack_dir = control / "git" / "objects" / "pack"
    names = {p.name for p in pack_dir.iterdir()}
    for name in names:
        assert not name.startswith("tmp"), names
        if name.endswith(".pack"):
            assert name[: -len(".pack")] + ".idx" in names, names
    assert not [p for p in (control / "git").rglob("*.lock")]
    incoming = control / "incoming"
    assert not incoming.exists() or not list(incoming.iterdir())


def assert_fsck_not_damage(cwd: Path) -> None:
    """fsck while the disk is still full: clean, or at worst 'the disk is full' (exit 1)."""
    r = run_vsync("fsck", cwd=cwd, check=False)
    if r.returncode != 0:
        assert_full_disk_error(r)
    else:
        assert "no problems" in r.stdout, r.stdout


def assert_fsck_clean(cwd: Path) -> None:
    r = run_vsync("fsck", cwd=cwd)
    assert "no problems" in r.stdout and not r.stderr.strip(), (r.stdout, r.stderr)


def test_commit_that_fills_the_disk_in_the_chunk_index(small_disk: Path) -> None:
    """The issue's case: state.db (SQLite) is what runs out of space. It used to end
    with "state.db is damaged (database or disk is full)", exit 3, and the file set aside."""
    work = small_disk / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    (work / "d").mkdir()
    for i in range(2000):
        (work / "d" / f"f{i}").write_text(f"file {i}\n")
    filler = fill(small_disk, 350 * 1024)  # the chunks fit; the index and stat cache do not
    r = run_vsync("commit", "-m", "many", cwd=work, check=False)
    assert_full_disk_error(r)
    assert_tidy(work / ".vsync")
    assert_fsck_not_damage(work)
    filler.unlink()
    assert_fsck_clean(work)
    run_vsync("commit", "-m", "many", cwd=work)
    assert_fsck_clean(work)
    assert "many" in run_vsync("log", cwd=work).stdout


def test_commit_that_fills_the_disk_in_a_chunk_pack(small_disk: Path) -> None:
    work = small_disk / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    (work / "small.txt").write_text("hello\n")
    run_vsync("commit", "-m", "one", cwd=work)
    (work / "big.bin").write_bytes(os.urandom(12 * MiB))
    filler = fill(small_disk, 6 * MiB)
    r = run_vsync("commit", "-m", "two", cwd=work, check=False)
    assert_full_disk_error(r, "chunks/pack-", "state.db")
    assert_tidy(work / ".vsync")
    assert_fsck_not_damage(work)
    assert "one" in run_vsync("log", cwd=work).stdout
    filler.unlink()
    assert_fsck_clean(work)
    run_vsync("commit", "-m", "two", cwd=work)
    assert_fsck_clean(work)
    assert "two" in run_vsync("log", cwd=work).stdout


@pytest.mark.parametrize("command", ["fetch", "pull"])
def test_fetch_and_pull_onto_a_full_disk(small_disk: Path, tmp_path: Path, command: str) -> None:
    source = tmp_path / "source"
    source.mkdir()
    run_vsync("init", cwd=source)
    (source / "small.txt").write_text("hello\n")
    run_vsync("commit", "-m", "one", cwd=source)
    local = small_disk / "local"
    run_vsync("clone", source, local, cwd=tmp_path)
    big = source / "big.bin"
    big.write_bytes(os.urandom(16 * MiB))
    run_vsync("commit", "-m", "two", cwd=source)
    filler = fill(small_disk, 6 * MiB)
    r = run_vsync(command, cwd=local, check=False)
    # a pull fills big.bin as its chunks arrive: that write may be the first to fail
    assert_full_disk_error(r, "chunks/pack-", *(["big.bin"] if command == "pull" else []))
    assert_tidy(local / ".vsync")
    assert_fsck_not_damage(local)
    assert not (local / "big.bin").exists()
    assert not [p for p in local.iterdir() if p.name.startswith(".vsync-tmp-")]
    filler.unlink()
    assert_fsck_clean(local)
    run_vsync("pull", cwd=local)
    assert sha(local / "big.bin") == sha(big)
    assert_fsck_clean(local)


def test_checkout_of_a_big_file_onto_a_full_disk(small_disk: Path) -> None:
    work = small_disk / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    data = os.urandom(12 * MiB)
    (work / "big.bin").write_bytes(data)
    out = run_vsync("commit", "-m", "with big", cwd=work).stdout
    old = re.search(r"\[main ([0-9a-f]+)\]", out)
    assert old, out
    (work / "big.bin").unlink()
    (work / "note.txt").write_text("the big file is gone\n")
    run_vsync("commit", "-m", "without", cwd=work)
    filler = fill(small_disk, 4 * MiB)
    r = run_vsync("checkout", old.group(1), cwd=work, check=False)
    assert_full_disk_error(r, "big.bin")
    assert_tidy(work / ".vsync")
    left = [p.name for p in work.iterdir() if p.name.startswith(".vsync-tmp")]
    assert not left and not (work / "big.bin").exists(), left
    # each file is its old or its new content: note.txt is there as it was, or gone
    note = work / "note.txt"
    assert not note.exists() or note.read_text() == "the big file is gone\n"
    assert_fsck_not_damage(work)
    filler.unlink()
    assert_fsck_clean(work)
    run_vsync("checkout", old.group(1), cwd=work)
    assert sha(work / "big.bin") == hashlib.sha256(data).hexdigest()
    assert_fsck_clean(work)


def _unreachable_beside_live(work: Path) -> bytes:
    """A chunk pack holding a live 12 MiB file and an unreachable 1 MiB one (gc must
    copy the live one out before it can delete the pack). Returns the live bytes."""
    run_vsync("init", cwd=work)
    live = os.urandom(12 * MiB)
    (work / "live.bin").write_bytes(live)
    (work / "gone.bin").write_bytes(os.urandom(MiB))
    run_vsync("commit", "-m", "both", cwd=work)
    # forget that commit (ref and reflog), then commit the live file alone
    (work / ".vsync/git/refs/heads/main").unlink()
    shutil.rmtree(work / ".vsync/git/logs")
    (work / "gone.bin").unlink()
    run_vsync("commit", "-m", "live only", cwd=work)
    return live


def test_gc_on_a_full_disk_says_how_much_space_it_needs(small_disk: Path) -> None:
    work = small_disk / "work"
    work.mkdir()
    live = _unreachable_beside_live(work)
    filler = fill(small_disk, 4 * MiB)
    r = run_vsync("gc", cwd=work, check=False)
    assert_full_disk_error(r, "could not write the packs gc rewrites")
    assert re.search(r"needs about 1[23]\.\d MiB free, [0-9.]+ [KM]iB is free", r.stderr), r.stderr
    assert_tidy(work / ".vsync")
    assert_fsck_not_damage(work)
    filler.unlink()
    out = run_vsync("gc", cwd=work).stdout
    assert re.match(r"gc: removed [1-9]\d* chunks?", out), out
    assert_fsck_clean(work)
    assert sha(work / "live.bin") == hashlib.sha256(live).hexdigest()
