"""``vsync serve --stdio PATH``: the remote side of push and fetch.

Runs on the machine that holds the repository (started through SSH, or as a
local subprocess for a path remote) and speaks the protocol on stdin/stdout.
It trusts nothing the client sends: wants must be advertised tips, received
objects and chunks are verified (:mod:`vsync.sync.transfer`), and the branch
moves only by compare-and-swap under the repository lock after everything it
reaches is stored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsync.errors import NotARepository, StoppedError, UsageError, VsyncError
from vsync.model.config import FORMAT_VERSION, idle_timeout
from vsync.model.repository import BRANCH, Repository
from vsync.ops.fastforward import update_after_push
from vsync.store import faults
from vsync.sync import protocol as p
from vsync.sync.crypt.detect import ENCRYPTED_REMOTE
from vsync.sync.errors import Stalled
from vsync.sync.fdpipe import FdPipe
from vsync.sync.negotiate import negotiate_server
from vsync.sync.offer import receive_offer
from vsync.sync.protocol import Connection, ProtocolError
from vsync.sync.readable import ReadableChunks
from vsync.sync.transfer import fetch_chunks, receive_pack, send_pack, serve_chunks

Warn = Callable[[str], None]


def _resolve_path(raw: str, restrict_to: str | None) -> Path:
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = Path.home() / path
    if restrict_to is not None:
        allowed = Path(os.path.expanduser(restrict_to)).resolve()
        real = path.resolve()
        if real != allowed and allowed not in real.parents:
            raise UsageError(f"repository {raw} is outside the folder this key may use")
    return path


def advertised_refs(repo: Repository) -> dict[str, str]:
    db = repo.gitdb
    out = {}
    for name in db.ref_names():
        if name.startswith(b"refs/heads/"):
            value = db.ref(name)
            if value is not None:
                out[name.decode()] = value.decode()
    return out


def serve_stdio(raw_path: str, restrict_to: str | None, warn: Warn) -> int:
    pipe = FdPipe(sys.stdin.fileno(), sys.stdout.fileno())
    conn = Connection(pipe)
    try:
        pipe.idle_timeout = idle_timeout()  # until the repository's own setting is read
        hello = conn.expect(p.HELLO).json()
        p.check_hello(hello)
        path = _resolve_path(raw_path, restrict_to)
        if hello.get("objects") == 1:  # objects-v1: this path is an encrypted remote
            from vsync.sync.objstore.serve import serve_objects

            return serve_objects(conn, path, raw_path, hello)
        if (path / "vsync-remote").is_file():  # the client then asks for objects
            conn.send_error(f"{raw_path} is an encrypted remote", ENCRYPTED_REMOTE)
            return 0
        if hello.get("create") and not path.exists():
            Repository.init(path, bare=True).close()
        try:
            repo = Repository.open_path(path)
        except NotARepository:
            raise UsageError(f"{raw_path} is not a vsync repository on the remote") from None
        with repo:
            pipe.idle_timeout = idle_timeout(repo.config)
            return _session(conn, repo, hello)
    except Stalled:
        raise  # the client is stuck or gone: nothing to tell it; our stderr says why
    except p.RemoteError:
        return 1
    except MemoryError:
        with contextlib.suppress(VsyncError, MemoryError):
            conn.send_error("the server ran out of memory; nothing was changed", "MemoryError")
        return 1
    except VsyncError as exc:
        with contextlib.suppress(VsyncError):
            conn.send_error(str(exc), type(exc).__name__)
        return exc.exit_code


def _session(conn: Connection, repo: Repository, hello: dict[str, Any]) -> int:
    faults.point("session-open")
    cfg = repo.config
    params = cfg.chunker_params()
    caps = server_capabilities()
    conn.send_json(
        p.HELLO,
        p.hello_payload(
            "server",
            caps,
            format=FORMAT_VERSION,
            bare=repo.bare,
            chunking={"min": params.min_size, "avg": params.avg_size, "max": params.max_size},
        ),
    )
    refs = advertised_refs(repo)
    conn.send_json(p.REFS, {"refs": refs})
    conn.flush()
    # send-v1 (docs/protocol.md, "Send"): one offer first, then requests until BYE.
    session = p.SEND_V1 in caps and p.peer_has(hello, p.SEND_V1)
    offered = False
    while True:
        kinds = [p.HAVES, p.PUSH, p.BYE, p.WATCH]
        if session and not offered:
            kinds += [p.OFFER_CHUNK, p.OFFER_END]
        msg = conn.expect(*kinds)
        if msg.type == p.BYE:
            return 0
        if msg.type == p.WATCH:
            from vsync.sync.watch.serve import serve_watch

            return serve_watch(conn, repo, msg.json())
        if msg.type in (p.OFFER_CHUNK, p.OFFER_END):
            stats = receive_offer(conn, repo, msg)
            offered = True
            refs = advertised_refs(repo)
            conn.send_json(
                p.REFS, {"refs": refs, "offered": {"chunks": stats.chunks, "bytes": stats.bytes}}
            )
            conn.flush()
            continue
        if msg.type == p.HAVES:
            advertised = {v.encode() for v in refs.values()}
            wants, common = negotiate_server(conn, repo, msg, advertised)
            sent = send_pack(conn, repo, wants, common, p.peer_has(hello, p.THIN_PACK))
            with ReadableChunks(repo, sorted(advertised), sent.sent) as readable:
                serve_chunks(conn, repo, readable)
            offered = True  # an offer comes first or not at all
            if session:
                continue
            conn.expect(p.BYE)
            return 0
        announce = p.WANT_TOTAL_V1 in caps and p.peer_has(hello, p.WANT_TOTAL_V1)
        return _serve_push(conn, repo, msg.json(), announce)


def server_capabilities() -> list[str]:
    """What this server's HELLO lists: all of :data:`p.CAPABILITIES`, less those named in
    ``VSYNC_TEST_SERVE_WITHOUT`` (comma-separated; tests play an older server with it)."""
    without = set(os.environ.get("VSYNC_TEST_SERVE_WITHOUT", "").split(","))
    return [cap for cap in p.CAPABILITIES if cap not in without]


def _oid(value: object, where: str) -> bytes | None:
    return None if value is None else p.parse_oid(value, where)


def _refuse(conn: Connection, code: str, message: str) -> int:
    conn.send_json(p.RESULT, {"ok": False, "code": code, "message": message})
    conn.flush()
    return 1


def _serve_push(conn: Connection, repo: Repository, info: dict[str, Any], announce: bool) -> int:
    """Receive a push; with ``announce`` (both sides list want-total-v1) tell the client
    how many chunks will be asked for before asking (its progress shows the total)."""
    ref = info.get("ref")
    if ref != BRANCH.decode():
        return _refuse(conn, "bad-ref", f"only {BRANCH.decode()} can be pushed")
    old, new = _oid(info.get("old"), "PUSH"), _oid(info.get("new"), "PUSH")
    if new is None:
        return _refuse(conn, "bad-ref", "deleting the branch is not supported")
    current = repo.head()
    if current != old:
        return _refuse(conn, "non-fast-forward", "remote has commits you do not have; pull first")
    conn.send_json(p.RESULT, {"ok": True, "code": "go"})
    conn.flush()
    incoming = receive_pack(conn, repo)
    try:
        incoming.validate([new])
        with incoming.missing_chunks() as wanted:
            if announce:
                conn.send_json(p.WANT_TOTAL, {"chunks": len(wanted), "bytes": wanted.raw_bytes})
            fetch_chunks(conn, repo, wanted)
        final = conn.expect(p.UPDATE_REF).json()
        asked = (
            final.get("ref"),
            _oid(final.get("old"), "UPDATE_REF"),
            _oid(final.get("new"), "UPDATE_REF"),
        )
        if asked != (ref, old, new):
            raise ProtocolError("the client's UPDATE_REF does not match its PUSH")
        with repo.lock(exclusive=True):
            incoming.commit()
            if repo.head() != old:
                return _refuse(
                    conn, "non-fast-forward", "remote has commits you do not have; pull first"
                )
            if current is not None and not _descends(repo, new, current):
                return _refuse(
                    conn, "non-fast-forward", "remote has commits you do not have; pull first"
                )
            if not repo.bare:
                try:
                    update_after_push(repo, old, new)
                except StoppedError as exc:
                    return _refuse(conn, "worktree-dirty", str(exc))
            if not repo.swap_ref(BRANCH, old, new, "push: received"):
                return _refuse(
                    conn, "non-fast-forward", "remote has commits you do not have; pull first"
                )
    finally:
        incoming.discard()
    conn.send_json(p.RESULT, {"ok": True, "code": "updated"})
    conn.flush()
    return 0


def _descends(repo: Repository, tip: bytes, ancestor: bytes) -> bool:
    from vsync.ops.history_graph import is_ancestor

    return is_ancestor(repo, ancestor, tip)
