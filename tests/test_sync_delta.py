"""Changed manifests travel as git deltas against what the receiver has (thin packs).

Every test runs over a real OpenSSH sshd on 127.0.0.1 and over a path remote.
A manifest is 36 bytes per chunk; after a 10-byte insertion only the entries
around it change, so the pack must be far smaller than the manifest, and the
receiver must still end with exactly the sender's objects (fsck, clone).
"""

from __future__ import annotations

import random
from pathlib import Path

from conftest import RemoteKind, Run, run_vsync

SIZE = 24 << 20  # a few hundred chunks: a manifest of several KB


def porcelain(out: Run) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(rng.randbytes(1 << 20))


def insert_middle(path: Path, data: bytes) -> None:
    blob = path.read_bytes()
    half = len(blob) // 2
    path.write_bytes(blob[:half] + data + blob[half:])


def fsck_clean(path: Path) -> None:
    out = run_vsync("fsck", cwd=path, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def setup_pushed(remote: RemoteKind, tmp_path: Path) -> tuple[Path, Path, int]:
    """A repository with a big file, pushed; returns it, the server and the manifest size."""
    a = tmp_path / "a"
    a.mkdir()
    run_vsync("init", cwd=a)
    write_random(a / "big.bin", SIZE, seed=3)
    (a / "notes.txt").write_text("hello\n")
    run_vsync("commit", "-m", "first", cwd=a)
    server = tmp_path / "server"
    out = porcelain(
        remote.run("push", "--create", "--porcelain", remote.url(server), *remote.cmd(), cwd=a)
    )
    chunks = int(out["chunks"])  # all in big.bin but one (notes.txt)
    assert chunks > 100
    return a, server, 20 + 36 * (chunks - 1)


def test_push_sends_changed_manifest_as_delta(remote: RemoteKind, tmp_path: Path) -> None:
    a, server, whole = setup_pushed(remote, tmp_path)
    insert_middle(a / "big.bin", b"0123456789")
    run_vsync("commit", "-m", "insert", cwd=a)
    out = porcelain(remote.run("push", "--porcelain", remote.url(server), *remote.cmd(), cwd=a))
    assert int(out["objects"]) == 3  # commit, tree, manifest
    assert int(out["pack_bytes"]) < whole // 4, out
    fsck_clean(server)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()
    fsck_clean(b)
    # and the other way: a fetch into b gets the next change as a delta too
    insert_middle(a / "big.bin", b"abcdefghij")
    run_vsync("commit", "-m", "again", cwd=a)
    remote.run("push", remote.url(server), *remote.cmd(), cwd=a)
    out = porcelain(remote.run("pull", "--porcelain", *remote.cmd(), cwd=b))
    assert int(out["pack_bytes"]) < whole // 4, out
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()
    fsck_clean(b)


def test_several_commits_chain_deltas_in_one_pack(remote: RemoteKind, tmp_path: Path) -> None:
    a, server, whole = setup_pushed(remote, tmp_path)
    for i in range(3):
        insert_middle(a / "big.bin", f"edit {i:5d}".encode())
        run_vsync("commit", "-m", f"edit {i}", cwd=a)
    out = porcelain(remote.run("push", "--porcelain", remote.url(server), *remote.cmd(), cwd=a))
    assert int(out["objects"]) == 9
    assert int(out["pack_bytes"]) < whole // 2, out
    fsck_clean(server)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()


def test_server_without_thin_pack_gets_whole_objects(remote: RemoteKind, tmp_path: Path) -> None:
    """A receiver that does not advertise thin-pack (an older vsync) still works."""
    a, server, whole = setup_pushed(remote, tmp_path)
    insert_middle(a / "big.bin", b"0123456789")
    run_vsync("commit", "-m", "insert", cwd=a)
    out = porcelain(
        remote.run("push", "--porcelain", remote.url(server), *remote.cmd("no-thin"), cwd=a)
    )
    assert int(out["pack_bytes"]) > whole, out  # the manifest went whole
    fsck_clean(server)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()


def test_delta_that_rebuilds_another_object_is_refused(remote: RemoteKind, tmp_path: Path) -> None:
    a, server, _whole = setup_pushed(remote, tmp_path)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    insert_middle(a / "big.bin", b"0123456789")
    run_vsync("commit", "-m", "insert", cwd=a)
    remote.run("push", remote.url(server), *remote.cmd(), cwd=a)
    before = run_vsync("log", "--oneline", cwd=b).stdout
    old_bytes = (b / "big.bin").read_bytes()
    out = remote.run("pull", remote.url(server), *remote.cmd("bad-delta"), cwd=b, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert "incomplete" in out.stderr or "pack" in out.stderr, out.stderr
    assert run_vsync("log", "--oneline", cwd=b).stdout == before
    assert (b / "big.bin").read_bytes() == old_bytes
    fsck_clean(b)
    remote.run("pull", remote.url(server), *remote.cmd(), cwd=b)  # the honest server works
    assert (b / "big.bin").read_bytes() == (a / "big.bin").read_bytes()


def test_file_changed_back_and_forth_in_one_push(remote: RemoteKind, tmp_path: Path) -> None:
    """Versions X, Y, X in three commits: each manifest's pair is the other (a base
    cycle); the pack must still hold every object once and the remote verify it."""
    a, server, _whole = setup_pushed(remote, tmp_path)
    original = (a / "big.bin").read_bytes()
    insert_middle(a / "big.bin", b"0123456789")
    x = (a / "big.bin").read_bytes()
    run_vsync("commit", "-m", "x", cwd=a)
    (a / "big.bin").write_bytes(original[:100] + b"y" + original[100:])
    run_vsync("commit", "-m", "y", cwd=a)
    (a / "big.bin").write_bytes(x)
    run_vsync("commit", "-m", "x again", cwd=a)
    out = porcelain(remote.run("push", "--porcelain", remote.url(server), *remote.cmd(), cwd=a))
    # the third commit's tree is the first's: 3 + 3 + 1 objects
    assert int(out["objects"]) == 7
    fsck_clean(server)
    b = tmp_path / "b"
    remote.run("clone", remote.url(server), b, *remote.cmd(), cwd=tmp_path)
    assert (b / "big.bin").read_bytes() == x
    assert len(run_vsync("log", "--oneline", cwd=b).stdout.splitlines()) == 4
    fsck_clean(b)
