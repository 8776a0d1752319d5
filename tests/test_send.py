"""``vsync sync`` streams the commit's chunks to the remote while it runs (send-v1).

End to end over the real sshd (and a path remote): the new file's chunks travel
during the commit (``offered_*`` in ``sync --porcelain``) so the push after it
sends no chunk; an older server (send-v1 switched off) gets the plain path; a
server killed during the streamed commit leaves both repositories fsck-clean,
the local commit in place, and the next sync completes; a hostile client's
offered chunks are refused before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from conftest import RemoteKind, run_vsync, wait_for_serve_exit
from hostile_peer import HELLO, REFS, Closed, Outcome, Wire, _finish, _serve_process

OFFER_CHUNK, OFFER_END, BYE = 0x24, 0x25, 0x3E
CHUNK_HEAD = struct.Struct(">32sBI")
SIZE = 6 * 1024 * 1024 + 12345  # a multi-MiB incompressible file: many chunks, all new


def porcelain(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def setup_pair(
    tmp_path: Path, remote: RemoteKind, remote_cmd: str | None = None, size: int = SIZE
) -> Path:
    """An empty bare remote and a fresh repository whose ``origin`` it is, holding one
    new (uncommitted) file of ``size`` random bytes."""
    bare = tmp_path / "remote"
    run_vsync("init", "--bare", bare, cwd=tmp_path)
    local = tmp_path / "local"
    local.mkdir()
    run_vsync("init", cwd=local)
    cmd = remote.cmd() if remote_cmd is None else ["--remote-cmd", remote_cmd]
    remote.run("remote", "add", "origin", remote.url(bare), *cmd, cwd=local)
    (local / "big.bin").write_bytes(os.urandom(size))
    return local


def branch(repo_git: Path) -> str:
    return (repo_git / "refs" / "heads" / "main").read_text().strip()


def assert_arrived(tmp_path: Path, local: Path, remote: RemoteKind) -> None:
    """The remote's branch is the local one and a clone of it holds the same bytes."""
    bare = tmp_path / "remote"
    assert branch(bare / "git") == branch(local / ".vsync" / "git")
    copy = tmp_path / "copy"
    remote.run("clone", remote.url(bare), copy, *remote.cmd(), cwd=tmp_path)
    assert (
        hashlib.sha256((copy / "big.bin").read_bytes()).digest()
        == hashlib.sha256((local / "big.bin").read_bytes()).digest()
    )
    run_vsync("fsck", cwd=local)
    run_vsync("fsck", cwd=bare)


def test_sync_streams_the_commit_and_the_push_sends_no_chunk(
    remote: RemoteKind, tmp_path: Path
) -> None:
    local = setup_pair(tmp_path, remote)
    out = porcelain(remote.run("sync", "--porcelain", cwd=local).stdout)
    assert out["pushed"] == "1" and out["commit"] == out["new"]
    assert out["sessions"] == "1"  # commit, fetch and push over one session
    # every byte of the new file went while the commit ran (random: stored raw) ...
    assert int(out["offered_bytes"]) == SIZE
    assert int(out["offered_chunks"]) >= 2
    # ... so the push after it moved the git pack and no chunk
    assert out["chunks"] == "0" and out["chunk_bytes"] == "0"
    assert int(out["pack_bytes"]) > 0
    assert_arrived(tmp_path, local, remote)
    again = porcelain(remote.run("sync", "--porcelain", cwd=local).stdout)
    assert again["commit"] == "-" and again["pushed"] == "0" and again["offered_chunks"] == "0"


def test_an_older_server_gets_the_plain_path(sshd_server: object, tmp_path: Path) -> None:
    ssh = RemoteKind("ssh", sshd_server)
    local = setup_pair(tmp_path, ssh)
    old = {"VSYNC_TEST_SERVE_WITHOUT": "send-v1"}  # forwarded to the server (SendEnv)
    env = ssh.env or {}
    out = porcelain(run_vsync("sync", "--porcelain", cwd=local, env={**env, **old}).stdout)
    assert out["pushed"] == "1"
    assert out["offered_chunks"] == "0" and out["sessions"] == "2"
    assert int(out["chunk_bytes"]) == SIZE  # every chunk the ordinary way, by the push
    assert_arrived(tmp_path, local, ssh)


def test_server_killed_during_the_streamed_commit(sshd_server: object, tmp_path: Path) -> None:
    """The server dies at the 3rd offered chunk: the commit lands all the same, the
    sync goes on in a new session, both sides are fsck-clean, the next sync is a no-op.

    The file is several times what the SSH channel's window and the socket buffers
    hold, so the chunks offered before the client learns of the death are a part of
    it whatever the timing (with 6 MiB, buffers could take nearly all)."""
    ssh = RemoteKind("ssh", sshd_server)
    size = 32 * 1024 * 1024
    local = setup_pair(tmp_path, ssh, size=size)
    env = {**(ssh.env or {}), "VSYNC_FAULTS": "serve/offer-received=kill@3"}
    done = run_vsync("sync", "--porcelain", cwd=local, env=env)
    out = porcelain(done.stdout)
    assert "took no more chunks during the commit" in done.stderr
    assert out["commit"] != "-" and out["pushed"] == "1" and out["sessions"] == "2"
    assert int(out["offered_bytes"]) < size  # stopped early ...
    assert int(out["chunk_bytes"]) > 0  # ... and the push sent the rest
    wait_for_serve_exit(tmp_path / "remote")
    assert_arrived(tmp_path, local, ssh)
    again = porcelain(ssh.run("sync", "--porcelain", cwd=local).stdout)
    assert again["pushed"] == "0" and again["outcome"] == "up-to-date"


def test_client_killed_during_the_streamed_commit(sshd_server: object, tmp_path: Path) -> None:
    """The sync itself is killed while it streams: no commit (it had not landed), both
    sides fsck-clean, and the next sync commits and sends everything."""
    ssh = RemoteKind("ssh", sshd_server)
    local = setup_pair(tmp_path, ssh)
    env = {**(ssh.env or {}), "VSYNC_FAULTS": "sync/chunk-offered=kill@5"}
    killed = run_vsync("sync", cwd=local, env=env, check=False)
    assert killed.returncode == -9
    wait_for_serve_exit(tmp_path / "remote")
    assert not (local / ".vsync" / "git" / "refs" / "heads" / "main").exists()
    run_vsync("fsck", cwd=local)
    run_vsync("fsck", cwd=tmp_path / "remote")
    out = porcelain(ssh.run("sync", "--porcelain", cwd=local).stdout)
    assert out["pushed"] == "1" and out["sessions"] == "1"
    assert_arrived(tmp_path, local, ssh)


# -- a hostile client's offers -------------------------------------------------------


def offer(path: Path, frames: list[tuple[int, bytes]]) -> Outcome:
    """Offer ``frames`` (type, payload) to a real ``vsync serve`` at ``path`` as a
    client that lists send-v1, then OFFER_END and BYE."""
    proc, out = _serve_process(path, None)
    assert proc.stdin is not None and proc.stdout is not None
    wire = Wire(proc.stdout.fileno(), proc.stdin.fileno())
    messages: list[tuple[int, dict[str, object]]] = []
    try:
        caps = ["chunks-v1", "pack-v2", "send-v1"]
        wire.send_json(
            HELLO, {"protocol": "vsync", "version": 1, "role": "client", "capabilities": caps}
        )
        assert wire.recv()[0] == HELLO
        assert wire.recv()[0] == REFS
        for mtype, payload in frames:
            wire.send(mtype, payload)
        wire.send_json(OFFER_END, {})
        mtype, payload = wire.recv()
        if mtype == REFS:
            wire.send(BYE)
        else:
            messages.append((mtype, json.loads(payload)))
    except Closed:
        pass
    return _finish(proc, out, messages)


def chunk_frame(data: bytes, cid: bytes | None = None, raw_len: int | None = None) -> bytes:
    import blake3

    real = blake3.blake3(data).digest()
    head = CHUNK_HEAD.pack(cid or real, 0, len(data) if raw_len is None else raw_len)
    return head + data


def test_honest_offer_is_stored(tmp_path: Path) -> None:
    bare = tmp_path / "remote"
    run_vsync("init", "--bare", bare, cwd=tmp_path)
    result = offer(bare, [(OFFER_CHUNK, chunk_frame(os.urandom(5000)))])
    assert result.returncode == 0, result.stderr
    chunks = list((bare / "chunks").glob("pack-*.vpk"))
    assert len(chunks) == 1  # stored, and referenced by nothing yet
    run_vsync("fsck", cwd=bare)


@pytest.mark.parametrize(
    "mode",
    ["wrong-hash", "short-payload", "raw-len-over-maximum", "payload-over-its-bound", "frame"],
)
def test_hostile_offers_are_refused(tmp_path: Path, mode: str) -> None:
    bare = tmp_path / "remote"
    run_vsync("init", "--bare", bare, cwd=tmp_path)
    data = os.urandom(5000)
    good = chunk_frame(os.urandom(4000))
    if mode == "wrong-hash":
        bad = chunk_frame(data, cid=b"\x01" * 32)
        expected = "do not match its id"
    elif mode == "short-payload":  # says 5001 bytes, carries 5000
        bad = chunk_frame(data, raw_len=len(data) + 1)
        expected = "do not match its id"
    elif mode == "raw-len-over-maximum":
        bad = chunk_frame(data, raw_len=(16 << 20) + 1)
        expected = "refusing it"
    elif mode == "payload-over-its-bound":  # 5000 stored bytes for a 100-byte chunk
        bad = chunk_frame(data, raw_len=100)
        expected = "5000 stored bytes for 100"
    else:  # a frame longer than any chunk may be: refused before it is read
        bad = b"\0" * (17 << 20)
        expected = "the limit is"
    result = offer(bare, [(OFFER_CHUNK, good), (OFFER_CHUNK, bad)])
    assert result.returncode != 0
    assert expected in result.error, (result.error, result.stderr)
    assert "Traceback" not in result.stderr
    # the batch holding the bad chunk was refused whole: nothing of it is stored
    assert not list((bare / "chunks").glob("pack-*.vpk"))
    run_vsync("fsck", cwd=bare)
