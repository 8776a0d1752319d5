"""``vsync fsck --repair [REMOTE]``: a damaged copy made whole again from another copy.

A pair of copies: A (three commits, the first two packed by gc) and B, a clone
of A. Each kind of damage is done to A (a chunk record with a flipped byte, a
chunk pack deleted, a git pack XOR'd whole or with a few bytes flipped, a git
pack deleted, a loose object corrupted); then ``fsck`` exits 3, ``fsck
--repair B`` exits 0, ``fsck`` exits 0, every file of every commit comes back
byte for byte, and neither the working folder nor any ref or reflog changed.
Damage B cannot mend (history A never pushed) is listed, exit 3; a hostile B
(tests/evil_serve.py) gets nothing bad stored; a repair killed at a random
moment leaves no more damage than it started from, and running it again
finishes. Every command is a real ``vsync`` subprocess; remotes are paths,
and one case goes through the real sshd (tests/sshd.py).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import EVIL, RemoteKind, run_vsync, snapshot_tree

from vsync.errors import DamagedRepository
from vsync.model.gitdb import MODE_FILE, MODE_TREE, TREE, RawObject, commit_object, object_id
from vsync.model.repository import BRANCH, Repository
from vsync.ops.repair import CopyRefused, restore
from vsync.store import chunkpack, codec

GIT = ".vsync/git"
CHUNKS = ".vsync/chunks"

Version = dict[str, bytes]  # path -> content, for the regular files of one commit


@dataclass
class Base:
    root: Path
    commits: list[tuple[str, Version]]  # oldest first


# -- the pair of copies ----------------------------------------------------------------------


def head(work: Path) -> str:
    return (work / GIT / "refs/heads/main").read_text().strip()


def commit(work: Path, message: str) -> str:
    run_vsync("commit", "-m", message, cwd=work)
    return head(work)


def files_of(work: Path) -> Version:
    out = {}
    for path, (kind, content, _x) in snapshot_tree(work).items():
        if kind == "file":
            assert isinstance(content, bytes)
            out[path] = content
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("repair")
    a = root / "a"
    a.mkdir()
    run_vsync("init", cwd=a)
    rng = random.Random(10)
    (a / "notes.txt").write_text("one\n")
    (a / "big.bin").write_bytes(rng.randbytes(1_500_000))
    (a / "sub").mkdir()
    (a / "sub" / "inner.txt").write_text("inner\n")
    os.symlink("notes.txt", a / "link")
    commits = [(commit(a, "first"), files_of(a))]
    data = (a / "big.bin").read_bytes()
    (a / "big.bin").write_bytes(data[:700_000] + b"inserted" + data[700_000:])
    (a / "notes.txt").write_text("one\ntwo\n")
    commits.append((commit(a, "second"), files_of(a)))
    run_vsync("gc", cwd=a)  # the first two commits in one git pack
    (a / "sub" / "more.bin").write_bytes(rng.randbytes(600_000))
    commits.append((commit(a, "third"), files_of(a)))
    run_vsync("clone", a, root / "b", cwd=root)
    return Base(root, commits)


def copy_pair(base: Base, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(base.root / "a", a, symlinks=True)
    shutil.copytree(base.root / "b", b, symlinks=True)
    return a, b


def repo_state(work: Path) -> dict[str, bytes]:
    """Every ref, reflog and HEAD, by content: a repair must move none of them."""
    out = {}
    for top in ("refs", "logs"):
        for dirpath, _dirs, files in os.walk(work / GIT / top):
            for name in files:
                path = Path(dirpath) / name
                out[str(path.relative_to(work / GIT))] = path.read_bytes()
    for name in ("HEAD", "packed-refs"):
        if (work / GIT / name).exists():
            out[name] = (work / GIT / name).read_bytes()
    return out


def fsck(work: Path) -> tuple[int, str]:
    r = run_vsync("fsck", cwd=work, check=False)
    assert "Traceback" not in r.stdout + r.stderr
    return r.returncode, r.stdout


def repair(work: Path, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return run_vsync("fsck", "--repair", *args, cwd=work, check=False, env=env)  # type: ignore[return-value]


def assert_whole(work: Path, base: Base) -> None:
    """fsck is clean and every file of every commit reads back byte for byte."""
    rc, out = fsck(work)
    assert rc == 0, out
    for cid, version in base.commits:
        for path, content in version.items():
            got = run_vsync("show", f"{cid}:{path}", cwd=work).stdout_bytes
            assert got == content, (cid, path)


def damage_keys(report: str) -> set[tuple[str, str]]:
    """What fsck names as damaged: (file, commit) pairs, commits, packs."""
    keys = set()
    for line in report.splitlines():
        m = re.match(r"damaged: (.+) in commit ([0-9a-f]{10}) ", line)
        if m:
            keys.add((m.group(1), m.group(2)))
            continue
        m = re.match(r"damaged: (commit|git pack|chunk pack) (\S+)", line)
        if m:
            keys.add((m.group(1), m.group(2).rstrip(":")))
        elif line.startswith("damaged:"):
            keys.add(("other", line))
    return keys


def bad_records(work: Path) -> set[tuple[str, bytes]]:
    """(pack, chunk id) of every record in a chunk pack in use that does not decode to its id."""
    bad = set()
    for name in chunkpack.iter_pack_names(work / CHUNKS):
        path = work / CHUNKS / name
        entries, _end = chunkpack.scan_records(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            for e in entries:
                payload = chunkpack.read_payload(fd, e, name)
                try:
                    codec.decode(e.compression, payload, e.raw_len, e.chunk_id, name)
                except DamagedRepository:
                    bad.add((name, e.chunk_id))
        finally:
            os.close(fd)
    return bad


# -- kinds of damage --------------------------------------------------------------------------


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def largest(paths: list[Path]) -> Path:
    return max(paths, key=lambda p: p.stat().st_size)


def git_packs(work: Path) -> list[Path]:
    return sorted((work / GIT / "objects/pack").glob("*.pack"))


def chunk_packs(work: Path) -> list[Path]:
    return sorted((work / CHUNKS).glob("*.vpk"))


def chunk_corrupt(work: Path) -> None:
    """One byte flipped in the middle of the payload of the largest chunk record."""
    pack = writable(largest(chunk_packs(work)))
    entries, _end = chunkpack.scan_records(pack)
    e = max(entries, key=lambda e: e.stored_len)
    with open(pack, "r+b") as f:
        f.seek(e.payload_offset + e.stored_len // 2)
        b = f.read(1)
        f.seek(e.payload_offset + e.stored_len // 2)
        f.write(bytes([b[0] ^ 0xFF]))


def chunk_pack_deleted(work: Path) -> None:
    largest(chunk_packs(work)).unlink()


def git_pack_xor(work: Path) -> None:
    """The body of the pack of the first two commits XOR'd: every object in it unreadable."""
    pack = writable(largest(git_packs(work)))
    data = bytearray(pack.read_bytes())
    for i in range(12, len(data) - 20):
        data[i] ^= 0x5A
    pack.write_bytes(bytes(data))


def git_pack_flip(work: Path) -> None:
    """16 bytes flipped in the middle of that pack: some objects damaged, most intact."""
    pack = writable(largest(git_packs(work)))
    data = bytearray(pack.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 16):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))


def git_pack_deleted(work: Path) -> None:
    pack = largest(git_packs(work))
    pack.with_suffix(".idx").unlink()
    pack.unlink()


def git(work: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={work / GIT}", *args], input=stdin, capture_output=True, check=True
    )
    return proc.stdout.decode()


def unpack_to_loose(work: Path) -> None:
    """Every object as a loose file, as git leaves them before it packs."""
    datas = []
    for pack in git_packs(work):
        datas.append(pack.read_bytes())
        pack.with_suffix(".idx").unlink()
        pack.unlink()
    for data in datas:
        git(work, "unpack-objects", "-q", stdin=data)


def loose_path(work: Path, oid: str) -> Path:
    return work / GIT / "objects" / oid[:2] / oid[2:]


def corrupt_loose(work: Path, oid: str) -> None:
    path = writable(loose_path(work, oid))
    data = path.read_bytes()
    path.write_bytes(data[:2] + bytes(b ^ 0xFF for b in data[2:]))  # zlib header kept


def loose_tree_corrupt(work: Path) -> None:
    """The root tree of the second commit, a loose object, corrupted: everything below it
    is hidden until it is repaired."""
    tree = git(work, "rev-parse", "HEAD~1^{tree}").strip()
    unpack_to_loose(work)
    corrupt_loose(work, tree)


def loose_manifest_corrupt(work: Path) -> None:
    """The manifest of big.bin in the first commit, a loose object, corrupted."""
    blob = git(work, "rev-parse", "HEAD~2:big.bin").strip()
    unpack_to_loose(work)
    corrupt_loose(work, blob)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "chunk-corrupt": chunk_corrupt,
    "chunk-pack-deleted": chunk_pack_deleted,
    "git-pack-xor": git_pack_xor,
    "git-pack-flip": git_pack_flip,
    "git-pack-deleted": git_pack_deleted,
    "loose-object-corrupt": loose_tree_corrupt,
}


# -- repairs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_repair_from_a_clone_makes_the_repository_whole(
    base: Base, tmp_path: Path, damage: str
) -> None:
    a, b = copy_pair(base, tmp_path)
    DAMAGE[damage](a)
    folder, state = snapshot_tree(a), repo_state(a)
    rc, report = fsck(a)
    assert rc == 3, report
    r = repair(a, b)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(r"^fsck: repaired from .*: \d+ git objects?, \d+ chunks?", r.stdout, re.M), (
        r.stdout
    )
    assert r.stdout.splitlines()[-1].endswith(": no problems"), r.stdout
    assert_whole(a, base)
    assert snapshot_tree(a) == folder  # the working folder is untouched
    assert repo_state(a) == state  # no ref or reflog moved
    assert not (a / ".vsync/damaged").exists()  # emptied once whole
    assert not bad_records(a)


def test_repair_over_ssh(base: Base, tmp_path: Path, sshd_server: object) -> None:
    remote = RemoteKind("ssh", sshd_server)
    a, b = copy_pair(base, tmp_path)
    chunk_pack_deleted(a)
    git_pack_flip(a)
    state = repo_state(a)
    r = remote.run("fsck", "--repair", remote.url(b), *remote.cmd(), cwd=a, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_whole(a, base)
    assert repo_state(a) == state


def test_nothing_to_repair_contacts_no_remote(base: Base, tmp_path: Path) -> None:
    a, _b = copy_pair(base, tmp_path)
    r = repair(a, tmp_path / "no-such-place")  # would fail if it were contacted
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [r.stdout.splitlines()[0], "fsck: nothing to repair"]
    assert r.stdout.startswith("fsck: checked 3 commits")


def test_every_configured_remote_in_turn(base: Base, tmp_path: Path) -> None:
    a, b = copy_pair(base, tmp_path)
    run_vsync("remote", "add", "origin", tmp_path / "gone", cwd=a)
    run_vsync("remote", "add", "backup", b, cwd=a)
    chunk_pack_deleted(a)
    state = repo_state(a)
    r = repair(a)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "could not repair from origin" in r.stderr  # tried first, failed
    assert "fsck: repaired from backup" in r.stdout
    assert_whole(a, base)
    assert repo_state(a) == state  # no refs/remotes/backup/main either


def test_no_remote_to_repair_from(base: Base, tmp_path: Path) -> None:
    a, _b = copy_pair(base, tmp_path)
    chunk_pack_deleted(a)
    r = repair(a)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "no remote to repair from" in r.stderr
    assert r.stdout.splitlines()[-1].endswith("could not be repaired")


def test_unknown_remote_name_is_bad_usage(base: Base, tmp_path: Path) -> None:
    a, _b = copy_pair(base, tmp_path)
    r = repair(a, "nosuch")
    assert r.returncode == 2
    assert r.stderr.startswith("vsync: error: no remote named 'nosuch'")


def test_what_the_remote_never_had_is_listed(base: Base, tmp_path: Path) -> None:
    a, b = copy_pair(base, tmp_path)
    before = set(chunk_packs(a))
    (a / "local.bin").write_bytes(random.Random(3).randbytes(300_000))
    local = commit(a, "never pushed")
    (new_pack,) = set(chunk_packs(a)) - before
    new_pack.unlink()  # local.bin's chunks: only A ever had them
    chunk_corrupt(a)  # and an old chunk, which B has
    r = repair(a, b)
    assert r.returncode == 3, r.stdout + r.stderr
    listed = [line for line in r.stdout.splitlines() if line.startswith("damaged:")]
    assert len(listed) == 1, r.stdout
    assert re.fullmatch(
        rf"damaged: local\.bin in commit {local[:10]} \(.+\): chunk [0-9a-f]{{16}} is missing"
        r"( \(and \d+ more damaged chunks\))?",
        listed[0],
    ), listed[0]
    assert r.stdout.splitlines()[-1] == "fsck: 1 problem could not be repaired"
    for cid, version in base.commits:  # everything B had is whole again
        for path, content in version.items():
            assert run_vsync("show", f"{cid}:{path}", cwd=a).stdout_bytes == content
    rc, report = fsck(a)
    assert rc == 3 and damage_keys(report) == {("local.bin", local[:10])}, report


@pytest.mark.parametrize(
    ("mode", "damage"), [("bad-chunk", "chunk-corrupt"), ("bad-pack", "git-pack-flip")]
)
def test_a_hostile_remote_cannot_make_repair_store_bad_data(
    base: Base, tmp_path: Path, mode: str, damage: str
) -> None:
    a, b = copy_pair(base, tmp_path)
    DAMAGE[damage](a)
    _rc, report = fsck(a)
    before, bad_before = damage_keys(report), bad_records(a)
    evil = f"{sys.executable} {EVIL} {mode}"
    r = repair(a, b, "--remote-cmd", evil)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith("vsync: error: the remote sent"), last
    rc, report = fsck(a)
    assert rc == 3 and damage_keys(report) <= before, report  # no worse than before
    assert bad_records(a) <= bad_before  # nothing bad was stored
    r = repair(a, b)  # the honest copy still repairs it
    assert r.returncode == 0, r.stdout + r.stderr
    assert_whole(a, base)


def test_a_copy_that_is_not_what_it_claims_is_refused(tmp_path: Path) -> None:
    """A copy offered for a missing object must hash to its id, and a tree must pass the
    rules of every received tree (its id matching is not enough: SHA-1 can collide)."""
    repo = Repository.init(tmp_path / "w")
    with repo:
        blob = RawObject(3, object_id(3, b"x"), b"x")
        unsafe = b"%o .vsync\0" % MODE_FILE + bytes.fromhex(blob.id.decode())
        unsafe_id = object_id(TREE, unsafe)
        root = b"%o sub\0" % MODE_TREE + bytes.fromhex(unsafe_id.decode())
        root_id = object_id(TREE, root)
        c = commit_object(
            tree=root_id, parents=[], author=b"T <t@e>", time=0, timezone=0, message=b"m"
        )
        repo.gitdb.add([RawObject(TREE, root_id, root), c])
        assert repo.gitdb.swap_ref(BRANCH, None, c.id, committer=b"T <t@e>", message=b"t")

        class Source:
            def __init__(self, raw: bytes) -> None:
                self.raw = raw

            def raw_object(self, oid: bytes) -> tuple[int, bytes] | None:
                return (TREE, self.raw) if oid == unsafe_id else None

            def has_object(self, oid: bytes) -> bool:
                return oid == unsafe_id

        with repo.lock(exclusive=True):
            with pytest.raises(CopyRefused, match="does not match its id"):
                restore(repo, Source(b"%o other\0" % MODE_FILE + bytes(20)))
            with pytest.raises(CopyRefused, match="unsafe"):
                restore(repo, Source(unsafe))
            assert not repo.gitdb.has(unsafe_id)  # nothing was stored
            assert restore(repo, None).objects_missing == 1


# -- a repair killed midway -------------------------------------------------------------------


def readable(work: Path, base: Base) -> set[tuple[str, str]]:
    """The (commit, path) file versions that read back byte for byte."""
    out = set()
    for cid, version in base.commits:
        for path, content in version.items():
            r = run_vsync("show", f"{cid}:{path}", cwd=work, check=False)
            if r.returncode == 0 and r.stdout_bytes == content:
                out.add((cid, path))
    return out


def both_kinds(work: Path) -> None:
    """Damage fsck sees whole at once: a git object and a chunk."""
    loose_manifest_corrupt(work)
    chunk_corrupt(work)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_repair_killed_midway_leaves_no_more_damage(
    base: Base, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    a, b = copy_pair(base, tmp_path)
    both_kinds(a)
    rc, report = fsck(a)
    assert rc == 3
    before, bad_before = damage_keys(report), bad_records(a)
    good_before = readable(a, base)
    folder, state = snapshot_tree(a), repo_state(a)
    # how long a whole repair takes, on a copy damaged the same way
    trial = tmp_path / "trial"
    shutil.copytree(a, trial, symlinks=True)
    t0 = time.monotonic()
    assert repair(trial, b).returncode == 0
    took = time.monotonic() - t0

    env = dict(os.environ, VSYNC_AUTHOR_NAME="t", VSYNC_AUTHOR_EMAIL="t@e")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsync", "fsck", "--repair", str(b)],
        cwd=a,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.1, took))
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    rc, report = fsck(a)
    assert rc in (0, 3), report
    assert damage_keys(report) <= before, report  # at most the damage it started from
    assert readable(a, base) >= good_before
    assert bad_records(a) <= bad_before
    r = repair(a, b)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_whole(a, base)
    assert snapshot_tree(a) == folder and repo_state(a) == state


def test_damage_with_a_good_copy_here_needs_no_remote(base: Base, tmp_path: Path) -> None:
    """A chunk pack whose trailer is overwritten: every record is still there, so the
    rewrite alone mends it; no remote is configured, none is needed."""
    a, _b = copy_pair(base, tmp_path)
    pack = writable(largest(chunk_packs(a)))
    with open(pack, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)  # the footer's magic
    rc, report = fsck(a)
    assert rc == 3 and "has no valid trailer" in report, report
    r = repair(a)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired from" not in r.stdout
    assert_whole(a, base)
    assert not bad_records(a)
