"""fsck and gc through the real CLI: damage is found and named, caches are rebuilt,
gc drops exactly what no ref or reflog entry reaches and never loses a version."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import VSYNC, racy_wait, run_vsync

from vsync.model.repository import Repository
from vsync.store import chunkpack, faults

SUMMARY = re.compile(
    r"^fsck: checked (\d+) commits?, (\d+) files?, (\d+) chunks? \(.+\): no problems$"
)


# -- helpers ------------------------------------------------------------------------------


def head(work: Path) -> str:
    return (work / ".vsync/git/refs/heads/main").read_text().strip()


def chunk_packs(work: Path) -> set[str]:
    return set(chunkpack.iter_pack_names(work / ".vsync/chunks"))


def git_packs(work: Path) -> set[str]:
    return {p.name[:-5] for p in (work / ".vsync/git/objects/pack").glob("*.pack")}


def stored_chunk_ids(work: Path) -> set[bytes]:
    """Every chunk id recorded in a pack trailer: what the store holds, index aside."""
    ids: set[bytes] = set()
    for name in chunk_packs(work):
        entries = chunkpack.read_trailer(work / ".vsync/chunks" / name)
        assert entries is not None, name
        ids.update(e.chunk_id for e in entries)
    return ids


def flip_payload_byte(pack: Path, record: int = 0, at: int = 100) -> None:
    """Flip one byte inside the payload of the ``record``-th record of a chunk pack."""
    entries, _end = chunkpack.scan_records(pack)
    e = entries[record]
    assert e.stored_len > at
    with open(pack, "r+b") as f:
        f.seek(e.payload_offset + at)
        b = f.read(1)
        f.seek(e.payload_offset + at)
        f.write(bytes([b[0] ^ 0xFF]))


def fsck(work: Path) -> tuple[int, str]:
    r = run_vsync("fsck", cwd=work, check=False)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout + r.stderr


def assert_clean(work: Path) -> re.Match[str]:
    rc, out = fsck(work)
    assert rc == 0, out
    m = SUMMARY.search(out.strip().splitlines()[-1])
    assert m, out
    return m


def show(work: Path, spec: str) -> bytes:
    return run_vsync("show", spec, cwd=work).stdout_bytes


def forget_last_commit(work: Path) -> str:
    """Move main back one commit and drop the reflog line that recorded the move,
    as if the newest commit had never been made: nothing reaches it any more."""
    gone = head(work)
    log = work / ".vsync/git/logs/refs/heads/main"
    lines = log.read_bytes().splitlines(keepends=True)
    old, new = lines[-1].split(b" ")[:2]
    assert new.decode() == gone
    (work / ".vsync/git/refs/heads/main").write_bytes(old + b"\n")
    log.write_bytes(b"".join(lines[:-1]))
    return gone


# -- fsck ---------------------------------------------------------------------------------


def test_fsck_clean_on_fresh_repository_with_several_commits(work: Path, vsync) -> None:
    assert SUMMARY.match(vsync("fsck").stdout.strip())  # no commits yet
    (work / "docs").mkdir()
    (work / "docs/readme.txt").write_text("hello\n")
    (work / "big.bin").write_bytes(os.urandom(1_500_000))
    vsync("commit", "-m", "one")
    (work / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(work / "run.sh", 0o755)
    os.symlink("docs/readme.txt", work / "link")
    vsync("commit", "-m", "two")
    with open(work / "big.bin", "ab") as f:
        f.write(b"more")
    (work / "docs/readme.txt").unlink()
    vsync("commit", "-m", "three")
    m = assert_clean(work)
    assert int(m.group(1)) == 3
    assert int(m.group(2)) == 4  # readme, big.bin x2, run.sh (symlinks are not files)
    assert int(m.group(3)) >= 8


def test_flipped_chunk_byte_names_the_damaged_file_version(work: Path, vsync) -> None:
    (work / "a.bin").write_bytes(os.urandom(300_000))
    vsync("commit", "-m", "a")
    [pack_a] = chunk_packs(work)
    (work / "b.bin").write_bytes(os.urandom(300_000))
    vsync("commit", "-m", "b")
    (work / "c.txt").write_text("c\n")
    vsync("commit", "-m", "c")
    flip_payload_byte(work / ".vsync/chunks" / pack_a)
    rc, out = fsck(work)
    assert rc == 3, out
    lines = out.strip().splitlines()
    assert lines[-1] == "fsck: 1 problem found"
    damaged = [ln for ln in lines if ln.startswith("damaged:")]
    assert len(damaged) == 1, out
    assert re.fullmatch(
        rf"damaged: a\.bin in commit {head(work)[:10]} \(\d{{4}}-\d\d-\d\d \d\d:\d\d\): "
        r"chunk [0-9a-f]{16} does not match its id \(same version in 2 more commits\)",
        damaged[0],
    ), damaged[0]
    assert "b.bin" not in out
    # the undamaged file still comes back; the damaged one is refused, not served wrong
    assert show(work, "HEAD:b.bin") == (work / "b.bin").read_bytes()
    r = run_vsync("show", "HEAD:a.bin", cwd=work, check=False)
    assert r.returncode == 3


def test_missing_git_pack_is_reported(work: Path, vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    [first] = git_packs(work)
    (work / "b.txt").write_text("b\n")
    vsync("commit", "-m", "two")
    for suffix in (".pack", ".idx"):
        (work / ".vsync/git/objects/pack" / (first + suffix)).unlink()
    rc, out = fsck(work)
    assert rc == 3, out
    assert re.search(r"damaged: commit [0-9a-f]{10} is missing", out), out
    assert re.search(
        r"damaged: a\.txt in commit [0-9a-f]{10} .*manifest [0-9a-f]{10} is missing", out
    )
    assert out.strip().splitlines()[-1].startswith("fsck: ")


def test_truncated_chunk_pack_is_reported(work: Path, vsync) -> None:
    (work / "a.bin").write_bytes(os.urandom(400_000))
    vsync("commit", "-m", "one")
    [pack] = chunk_packs(work)
    path = work / ".vsync/chunks" / pack
    os.truncate(path, path.stat().st_size // 2)
    rc, out = fsck(work)
    assert rc == 3, out
    assert f"chunk pack {pack} has no valid trailer" in out
    assert re.search(r"damaged: a\.bin in commit [0-9a-f]{10} ", out), out


def test_damaged_record_header_is_reported(work: Path, vsync) -> None:
    # over the 512 KiB chunk maximum, so always two records or more (a random
    # 400,000-byte file is one chunk about once in 80, and this test then failed)
    (work / "a.bin").write_bytes(os.urandom(1_200_000))
    vsync("commit", "-m", "one")
    [pack] = chunk_packs(work)
    path = work / ".vsync/chunks" / pack
    entries, _ = chunkpack.scan_records(path)
    with open(path, "r+b") as f:  # the record's magic; the trailer stays valid
        assert len(entries) >= 2
        f.seek(entries[1].offset)
        f.write(b"XXXX")
    rc, out = fsck(work)
    assert rc == 3, out
    assert f"chunk pack {pack}: its records do not match its trailer" in out
    assert re.search(
        r"damaged: a\.bin in commit [0-9a-f]{10} .*chunk [0-9a-f]{16} cannot be read", out
    )


def test_chunk_index_that_disagrees_with_a_pack_is_rebuilt(work: Path, vsync) -> None:
    data = os.urandom(400_000)
    (work / "a.bin").write_bytes(data)
    vsync("commit", "-m", "one")
    [pack] = chunk_packs(work)
    with sqlite3.connect(work / ".vsync/state.db") as db:
        db.execute("UPDATE chunks SET offset = offset + 7")
    db.close()
    rc, out = fsck(work)
    assert rc == 0, out
    assert f"the chunk index did not match pack {pack}; rebuilt the index" in out
    assert show(work, "HEAD:a.bin") == data


def test_deleted_state_db_is_rebuilt(work: Path, vsync) -> None:
    data = os.urandom(500_000)
    (work / "a.bin").write_bytes(data)
    vsync("commit", "-m", "one")
    for p in (work / ".vsync").glob("state.db*"):
        p.unlink()
    rc, out = fsck(work)
    assert rc == 0, out
    assert "state.db was missing" in out
    assert show(work, "HEAD:a.bin") == data


def test_garbage_in_state_db_breaks_nothing(work: Path, vsync) -> None:
    data = os.urandom(500_000)
    (work / "a.bin").write_bytes(data)
    vsync("commit", "-m", "one")
    db = work / ".vsync/state.db"
    db.write_bytes(os.urandom(db.stat().st_size))  # header and all
    assert vsync("status", "--porcelain").stdout == ""
    assert show(work, "HEAD:a.bin") == data
    (work / "b.txt").write_text("b\n")
    vsync("commit", "-m", "two")
    assert_clean(work)


def test_damaged_page_in_state_db_is_found_and_rebuilt(work: Path, vsync) -> None:
    (work / "d").mkdir()
    for i in range(300):  # enough stat-cache rows for a multi-page table
        (work / "d" / f"file-with-a-longish-name-{i}.txt").write_text(f"{i}\n")
    vsync("commit", "-m", "many")
    db = work / ".vsync/state.db"
    size = db.stat().st_size
    assert size >= 8 * 4096
    with open(db, "r+b") as f:  # scribble over the last page; the header stays intact
        f.seek(size - 4096 + 100)
        f.write(b"\xff" * 2000)
    rc, out = fsck(work)
    assert rc == 0, out
    assert "state.db was damaged" in out
    assert list((work / ".vsync").glob("state.db.damaged-*"))
    rc, out = fsck(work)
    assert rc == 0 and "state.db" not in out, out
    assert vsync("status", "--porcelain").stdout == ""


def test_stale_ref_lock_from_a_killed_commit_is_removed(work: Path, vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    lock = work / ".vsync/git/refs/heads/main.lock"
    lock.write_text("")
    rc, out = fsck(work)
    assert rc == 0, out
    assert "main.lock" in out and not lock.exists()
    # a commit that meets one breaks it itself (tests/test_locks.py kills one for real)
    lock.write_text("")
    (work / "a.txt").write_text("changed\n")
    r = vsync("commit", "-m", "two")
    assert "removed the stale lock file git/refs/heads/main.lock" in r.stderr, r.stderr
    assert show(work, "HEAD:a.txt") == b"changed\n"


def test_commit_killed_between_git_pack_and_its_index(work: Path, vsync) -> None:
    """dulwich renames the .pack into place, then writes the .idx (via .idx.lock),
    and only then does commit move the ref. Recreate the state a kill in between
    leaves: the repository stays readable, fsck is clean, gc clears the leftovers."""
    base = os.urandom(200_000)
    (work / "a.bin").write_bytes(base)
    vsync("commit", "-m", "one")
    before_chunks = stored_chunk_ids(work)
    (work / "b.bin").write_bytes(os.urandom(300_000))
    before = set(git_packs(work))
    vsync("commit", "-m", "two")
    [new] = git_packs(work) - before
    forget_last_commit(work)
    pack_dir = work / ".vsync/git/objects/pack"
    os.replace(pack_dir / (new + ".idx"), pack_dir / (new + ".idx.lock"))
    assert show(work, "HEAD:a.bin") == base
    rc, out = fsck(work)
    assert rc == 0, out
    assert "unfinished git pack" in out
    out = vsync("gc").stdout
    assert not (pack_dir / (new + ".pack")).exists()
    assert not list(pack_dir.glob("*.lock"))
    assert stored_chunk_ids(work) == before_chunks
    assert re.match(r"gc: removed [1-9]\d* chunks?", out), out
    assert_clean(work)
    vsync("commit", "-m", "two again")
    assert show(work, "HEAD:b.bin") == (work / "b.bin").read_bytes()


# -- gc -----------------------------------------------------------------------------------


def test_gc_keeps_every_version_history_reaches(work: Path, vsync) -> None:
    big = os.urandom(3_000_000)
    (work / "big.bin").write_bytes(big)
    (work / "small.txt").write_text("s\n")
    vsync("commit", "-m", "big")
    (work / "big.bin").unlink()
    vsync("commit", "-m", "drop big")
    ids = stored_chunk_ids(work)
    out = vsync("gc").stdout.strip()
    assert re.fullmatch(
        r"gc: removed 0 chunks \(0\.0 MiB\), rewrote 0 packs, store is now \d+\.\d MiB", out
    ), out
    assert float(out.rsplit(" ", 2)[-2]) >= 2.8
    assert stored_chunk_ids(work) == ids
    assert show(work, "HEAD~1:big.bin") == big
    assert len(git_packs(work)) == 1  # the per-commit git packs were repacked into one
    assert_clean(work)


def test_gc_keeps_commits_only_the_reflog_reaches(work: Path, vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    gone = os.urandom(1_000_000)
    (work / "x.bin").write_bytes(gone)
    vsync("commit", "-m", "two")
    c2 = head(work)
    log = work / ".vsync/git/logs/refs/heads/main"
    first = log.read_bytes().splitlines()[0].split(b" ")[1]
    (work / ".vsync/git/refs/heads/main").write_bytes(first + b"\n")  # reflog keeps c2
    out = vsync("gc").stdout
    assert out.startswith("gc: removed 0 chunks"), out
    assert show(work, f"{c2}:x.bin") == gone
    assert assert_clean(work).group(1) == "2"


def test_gc_removes_exactly_the_unreachable_chunks(work: Path, vsync) -> None:
    keep = os.urandom(1_500_000)
    (work / "keep.bin").write_bytes(keep)
    vsync("commit", "-m", "one")
    c1 = head(work)
    ids_one = stored_chunk_ids(work)
    packs_one = chunk_packs(work)
    x = os.urandom(2_000_000)
    y = os.urandom(1_000_000)
    (work / "x.bin").write_bytes(x)
    (work / "y.bin").write_bytes(y)
    vsync("commit", "-m", "two")
    [mixed] = chunk_packs(work) - packs_one
    ids_two = stored_chunk_ids(work)
    gone = forget_last_commit(work)
    # y comes back in a new commit: its chunks are already stored (in the pack it
    # shares with x), so that pack ends up part live, part unreachable
    (work / "x.bin").unlink()
    vsync("commit", "-m", "three")
    assert stored_chunk_ids(work) == ids_two
    y_chunks = [bytes.fromhex(h) for h in _manifest_chunks(work, "HEAD:y.bin")]
    y_ids = set(y_chunks)
    x_only = ids_two - ids_one - y_ids
    assert x_only
    # a reader (this test process) that holds no lock and has the old pack open
    reader = Repository.open_path(work)
    assert reader.chunks.read(y_chunks[0]) == y[: len(reader.chunks.read(y_chunks[0]))]
    out = vsync("gc").stdout.strip()
    try:
        assert b"".join(reader.chunks.read(c) for c in y_chunks) == y
    finally:
        reader.close()
    m = re.fullmatch(r"gc: removed (\d+) chunks? \((\d+\.\d) MiB\), rewrote 1 pack, .*", out)
    assert m, out
    assert int(m.group(1)) == len(x_only)
    assert float(m.group(2)) >= 1.8
    assert stored_chunk_ids(work) == ids_two - x_only
    assert mixed not in chunk_packs(work)
    assert show(work, "HEAD:y.bin") == y
    assert show(work, "HEAD:keep.bin") == keep
    assert show(work, f"{c1}:keep.bin") == keep
    assert run_vsync("show", f"{gone}:x.bin", cwd=work, check=False).returncode == 2
    assert_clean(work)
    # a second gc finds nothing more to do
    assert vsync("gc").stdout.startswith("gc: removed 0 chunks (0.0 MiB), rewrote 0 packs")
    # x comes back: status hashes it and caches its old manifest id; commit must not
    # trust that manifest (gc dropped its chunks) but store the chunks again
    (work / "x.bin").write_bytes(x)
    past = time.time() - 100
    os.utime(work / "x.bin", (past, past))
    time.sleep(racy_wait())  # utime set ctime to now: trusted only past the racy window
    assert vsync("status", "--porcelain").stdout == "?? x.bin\n"
    vsync("commit", "-m", "x again")
    assert show(work, "HEAD:x.bin") == x
    assert_clean(work)


def _manifest_chunks(work: Path, spec: str) -> list[str]:
    """The chunk ids of a file version, read from its manifest blob in the git store."""
    code = (
        "import sys\n"
        "from vsync.model.repository import Repository\n"
        "from vsync.model.revisions import resolve_rev_path\n"
        "from vsync.model.snapshot import commit_tree, lookup\n"
        "repo = Repository.discover()\n"
        "cid, path = resolve_rev_path(repo, sys.argv[1])\n"
        "db = repo.gitdb\n"
        "_mode, oid = lookup(db, commit_tree(db, cid), path)\n"
        "for c, _n in db.manifest(oid).chunks:\n"
        "    print(c.hex())\n"
        "repo.close()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, spec], cwd=work, capture_output=True, text=True, check=True
    )
    return r.stdout.split()


def test_gc_refuses_to_copy_a_damaged_live_chunk(work: Path, vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    packs_one = chunk_packs(work)
    y = os.urandom(600_000)
    (work / "x.bin").write_bytes(os.urandom(600_000))
    (work / "y.bin").write_bytes(y)
    vsync("commit", "-m", "two")
    [mixed] = chunk_packs(work) - packs_one
    forget_last_commit(work)
    (work / "x.bin").unlink()
    vsync("commit", "-m", "three")  # y live, x unreachable, both in `mixed`
    y_ids = {bytes.fromhex(h) for h in _manifest_chunks(work, "HEAD:y.bin")}
    entries, _ = chunkpack.scan_records(work / ".vsync/chunks" / mixed)
    index = next(i for i, e in enumerate(entries) if e.chunk_id in y_ids)
    flip_payload_byte(work / ".vsync/chunks" / mixed, index)
    snapshot = _store_files(work)
    r = run_vsync("gc", cwd=work, check=False)
    assert r.returncode == 3, r
    assert "gc removed nothing" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert _store_files(work) == snapshot


def _store_files(work: Path) -> dict[str, bytes]:
    out = {}
    for sub in ("chunks", "git/objects"):
        for p in sorted((work / ".vsync" / sub).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(work))] = p.read_bytes()
    return out


def test_gc_refuses_when_history_is_damaged(work: Path, vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    [first] = git_packs(work)
    (work / "b.txt").write_text("b\n")
    vsync("commit", "-m", "two")
    shutil.move(work / ".vsync/git/objects/pack" / (first + ".pack"), work / "moved.pack")
    snapshot = _store_files(work)
    r = run_vsync("gc", cwd=work, check=False)
    assert r.returncode == 3
    assert "gc removed nothing" in r.stderr
    assert _store_files(work) == snapshot


def _trace_lines(trace: Path) -> list[tuple[str, str]]:
    if not trace.exists():
        return []
    return [tuple(line.split()[:2]) for line in trace.read_text().splitlines()]  # type: ignore[misc]


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds a file descriptor on ``path``."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == os.path.realpath(path):
                return True
        except OSError:
            continue
    return False


def test_gc_concurrent_with_a_commit(work: Path, vsync) -> None:
    """gc started while a commit is in its most dangerous moment (every chunk and
    object written, the branch not yet moved, so nothing reaches them) waits for
    the commit's lock and keeps what it wrote. The commit is held there
    (``commit/ref-swap=sleep``) until gc is seen waiting on the lock; the
    fault-point trace then shows gc marked only after the branch moved."""
    a = os.urandom(2_000_000)
    (work / "a.bin").write_bytes(a)
    vsync("commit", "-m", "one")
    (work / "a.bin").unlink()
    vsync("commit", "-m", "two")
    (work / "old.bin").write_bytes(os.urandom(1_000_000))
    vsync("commit", "-m", "three")
    forget_last_commit(work)  # old.bin's chunks are garbage now
    (work / "old.bin").unlink()
    big = os.urandom(30_000_000)
    (work / "big.bin").write_bytes(big)
    trace = work.parent / "trace"
    env = dict(os.environ, VSYNC_AUTHOR_NAME="T", VSYNC_AUTHOR_EMAIL="t@e", VSYNC_HOST="h")
    env.update({faults.TRACE_ENV: str(trace), faults.ENV: "commit/ref-swap=sleep:3"})
    commit = subprocess.Popen(
        [*VSYNC, "commit", "-q", "-m", "concurrent"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while ("commit", "ref-swap") not in _trace_lines(trace):
        assert commit.poll() is None and time.monotonic() < deadline, commit.communicate()
        time.sleep(0.01)
    gc = subprocess.Popen(
        [*VSYNC, "gc"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    lock = work / ".vsync" / "lock"
    while not _has_open(gc.pid, lock):  # gc is in the lock's wait loop
        assert gc.poll() is None and time.monotonic() < deadline, gc.communicate()
        time.sleep(0.01)
    assert ("commit", "ref-swapped") not in _trace_lines(trace), "the commit did not wait"
    _c_out, c_err = commit.communicate(timeout=300)
    g_out, g_err = gc.communicate(timeout=300)
    assert commit.returncode == 0, c_err
    assert gc.returncode == 0, g_err
    assert re.match(rb"gc: removed [1-9]\d* chunks?", g_out), g_out
    order = _trace_lines(trace)
    assert order.index(("commit", "ref-swapped")) < order.index(("gc", "lock-taken"))
    assert order.index(("gc", "lock-taken")) < order.index(("gc", "gc-marked"))
    assert show(work, "HEAD:big.bin") == big
    assert show(work, "HEAD~2:a.bin") == a
    assert_clean(work)


def test_fsck_and_gc_outside_a_repository(tmp_path: Path) -> None:
    for cmd in ("fsck", "gc"):
        r = run_vsync(cmd, cwd=tmp_path, check=False)
        assert r.returncode == 2
        assert r.stderr.startswith("vsync: error: not a vsync repository")
        assert r.stderr.count("\n") == 1
