"""Damage to the git repository gives exit 3, one line naming it, and changes nothing.

Each kind of damage (a pack whose bytes were flipped, a truncated pack, a
truncated pack index, a loose object whose zlib stream is broken, the branch
pointing at a missing commit, a commit whose tree is missing) is made in a
copy of one small repository, and every command that reads history runs on
it as a real subprocess. A command that needs the damaged data exits 3 with
exactly one line on stderr that names the damaged object and says to run
fsck, no traceback, and the repository (refs, objects, chunks, the working
folder) is byte for byte as before. ``fsck`` reports the damage on stdout and
exits 3.

A few commands legitimately do not touch some damage, and succeed:
``reflog`` reads only the reflog files (it is how one finds a good state to
go back to), ``log`` without paths reads commits, not trees, and ``undo`` of
a commit whose tree is missing moves the branch back to the intact parent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_vsync

GIT = ".vsync/git"
BOGUS = "deadbeef" * 5


# -- the repository, and what damage does to it ---------------------------------------------


def git(work: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={work / GIT}", *args],
        input=stdin,
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode()


def only_pack(work: Path) -> Path:
    (pack,) = (work / GIT / "objects/pack").glob("*.pack")
    return pack


def pack_ids(work: Path) -> set[str]:
    idx = only_pack(work).with_suffix(".idx").read_bytes()
    return {line.split()[1] for line in git(work, "show-index", stdin=idx).splitlines()}


def head_id(work: Path) -> str:
    return (work / GIT / "refs/heads/main").read_text().strip()


def loose_path(work: Path, oid: str) -> Path:
    return work / GIT / "objects" / oid[:2] / oid[2:]


def unpack_to_loose(work: Path) -> None:
    """Every object as a loose file, as git leaves them before it packs."""
    pack = only_pack(work)
    data = pack.read_bytes()
    for path in (pack, pack.with_suffix(".idx")):
        path.unlink()
    git(work, "unpack-objects", "-q", stdin=data)


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def xor_pack(work: Path) -> set[str]:
    ids = pack_ids(work)
    pack = writable(only_pack(work))
    data = bytearray(pack.read_bytes())
    for i in range(12, len(data) - 20):  # the body: not the header, not the checksum
        data[i] ^= 0x5A
    pack.write_bytes(bytes(data))
    return ids


def truncate_pack(work: Path) -> set[str]:
    ids = pack_ids(work)
    pack = writable(only_pack(work))
    os.truncate(pack, pack.stat().st_size // 2)
    return ids


def truncate_idx(work: Path) -> set[str]:
    ids = pack_ids(work)
    idx = writable(only_pack(work).with_suffix(".idx"))
    os.truncate(idx, idx.stat().st_size // 2)
    return ids


def loose_bad_zlib(work: Path) -> set[str]:
    unpack_to_loose(work)
    head = head_id(work)
    path = writable(loose_path(work, head))
    data = path.read_bytes()
    path.write_bytes(data[:2] + bytes(b ^ 0xFF for b in data[2:]))  # zlib header kept
    return {head}


def ref_to_missing(work: Path) -> set[str]:
    (work / GIT / "refs/heads/main").write_text(BOGUS + "\n")
    return {BOGUS}


def tree_missing(work: Path) -> set[str]:
    tree = git(work, "rev-parse", "HEAD^{tree}").strip()
    unpack_to_loose(work)
    loose_path(work, tree).unlink()
    return {tree}


DAMAGE: dict[str, Callable[[Path], set[str]]] = {
    "xor-pack": xor_pack,
    "truncated-pack": truncate_pack,
    "truncated-idx": truncate_idx,
    "loose-bad-zlib": loose_bad_zlib,
    "ref-to-missing": ref_to_missing,
    "tree-missing": tree_missing,
}

COMMANDS: dict[str, list[str]] = {
    "log": ["log"],
    "status": ["status"],
    "show": ["show", "HEAD"],
    "diff": ["diff"],
    "checkout": ["checkout", "HEAD~1"],
    "restore": ["restore", "notes.txt", "--source", "HEAD~1"],
    "history": ["history", "notes.txt"],
    "undo": ["undo"],
    "reflog": ["reflog"],
    "commit": ["commit", "-m", "more"],
    "gc": ["gc"],
    "fsck": ["fsck"],
}

# (damage, command) pairs that succeed: the command never reads what is damaged.
UNTOUCHED = {(d, "reflog") for d in DAMAGE} | {("tree-missing", "log"), ("tree-missing", "undo")}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three commits in one pack (as gc leaves them), and an uncommitted edit."""
    work = tmp_path_factory.mktemp("damage") / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    (work / "notes.txt").write_text("one\n")
    (work / "sub").mkdir()
    (work / "sub" / "inner.txt").write_text("inner\n")
    os.symlink("notes.txt", work / "link")
    run_vsync("commit", "-m", "first", cwd=work)
    (work / "notes.txt").write_text("one\ntwo\n")
    run_vsync("commit", "-m", "second", cwd=work)
    (work / "sub" / "more.bin").write_bytes(os.urandom(3000))
    run_vsync("commit", "-m", "third", cwd=work)
    run_vsync("gc", cwd=work)
    (work / "draft.txt").write_text("not committed yet\n")
    return work


def snapshot(work: Path) -> dict[str, str]:
    """Every file of the folder and its repository (caches aside), by content."""
    out = {}
    for dirpath, _dirs, files in os.walk(work):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(work).as_posix()
            if rel.startswith(".vsync/state.db") or rel == ".vsync/lock":
                continue  # caches vsync rebuilds, and the lock file
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_gives_exit_3_and_one_line(
    base: Path, tmp_path: Path, damage: str, command: str
) -> None:
    work = tmp_path / "work"
    shutil.copytree(base, work, symlinks=True)
    damaged = DAMAGE[damage](work)
    before = snapshot(work)
    head = head_id(work)
    r = run_vsync(*COMMANDS[command], cwd=work, check=False)
    assert "Traceback" not in r.stderr + r.stdout
    assert "internal error" not in r.stderr
    if (damage, command) in UNTOUCHED:
        assert r.returncode == 0, r.stderr
        if command == "undo":  # the damaged commit is taken back; its parent is intact
            assert head_id(work) == git(work, "rev-parse", f"{head}~1").strip()
        else:
            assert snapshot(work) == before
        return
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    if command == "fsck":
        report = [line for line in r.stdout.splitlines() if line.startswith("damaged: ")]
        assert report, r.stdout
        assert any(oid[:10] in line for line in report for oid in damaged), report
    else:
        lines = r.stderr.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("vsync: error: ") and "run 'vsync fsck'" in lines[0]
        assert any(oid[:10] in lines[0] for oid in damaged), lines[0]
    assert snapshot(work) == before
    assert head_id(work) == head
