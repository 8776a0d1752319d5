"""The client side of fetch and push: one session per command over a transport."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vsync.errors import DamagedRepository, StoppedError, UsageError, VsyncError
from vsync.model.config import idle_timeout
from vsync.model.gitdb import Commit
from vsync.model.gitdb.incoming import remove_abandoned
from vsync.model.prefill import Prefill
from vsync.model.repository import BRANCH, Repository
from vsync.ops.history_graph import is_ancestor
from vsync.ops.hooks import require_hook_ok
from vsync.store import faults
from vsync.sync import protocol as p
from vsync.sync.crypt.detect import ENCRYPTED_REMOTE, is_encrypted
from vsync.sync.errors import TransportClosed
from vsync.sync.negotiate import negotiate_client
from vsync.sync.protocol import Connection
from vsync.sync.readable import ReadableChunks
from vsync.sync.remotes import Remote
from vsync.sync.transfer import (
    IncomingPack,
    TransferStats,
    fetch_chunks,
    receive_pack,
    send_pack,
    serve_chunks,
)
from vsync.sync.transport import Transport, open_transport

REJECTED = "remote has commits you do not have; pull first"


class TransferProgress(Protocol):
    """What the UI implements to show a transfer; ``tick`` gets running totals."""

    def phase(self, label: str, total_chunks: int) -> None: ...
    def tick(self, chunks: int, nbytes: int) -> None: ...
    def done(self) -> None: ...


@dataclass
class SyncOptions:
    remote_cmd: str | None = None
    accept_new_host_key: bool = False
    progress: TransferProgress | None = None
    passphrase: Callable[[], str] | None = None  # an encrypted remote's (else VSYNC_PASSWORD)
    endpoint: str | None = None  # clone: the S3 endpoint of an s3:// URL (kept in its config)
    # an encrypted SSH key's, by path and attempt (None: skip the key); see sync/ssh.py
    key_passphrase: Callable[[str, int], str | None] | None = None


@dataclass
class TransferResult:
    remote: str
    old: bytes | None = None  # the ref before (local tracking ref or remote branch)
    new: bytes | None = None
    up_to_date: bool = False
    stats: TransferStats = field(default_factory=TransferStats)
    wire_sent: int = 0
    wire_received: int = 0
    seconds: float = 0.0


@dataclass
class Session:
    transport: Transport
    conn: Connection
    hello: dict[str, Any]
    refs: dict[bytes, bytes]
    label: str
    # kept open across requests (``vsync sync``, capability send-v1): ``bye`` and
    # ``close`` do nothing until the owner sets it back to False
    keep_open: bool = False

    def close(self) -> None:
        if self.keep_open:
            return
        with contextlib.suppress(VsyncError):
            self.transport.close()

    def bye(self) -> None:
        """Tell the remote the session is over."""
        if self.keep_open:
            return
        self.conn.send(p.BYE)
        self.conn.flush()

    @contextlib.contextmanager
    def closing(self, result: TransferResult) -> Iterator[None]:
        """Close the session at the end, counting its wire bytes into ``result``. An
        interrupt (Ctrl-C) stops the remote at once, as a kill would (``close`` would
        wait for it to finish). A kept session stays open unless this fails."""
        sent, received = self.transport.bytes_sent, self.transport.bytes_received
        try:
            yield
        except BaseException as exc:
            self.keep_open = False  # in the middle of a request: unusable
            if not isinstance(exc, Exception):
                self.transport.abort()
            raise
        finally:
            result.wire_sent = self.transport.bytes_sent - sent
            result.wire_received = self.transport.bytes_received - received
            self.close()


def open_session(
    remote: Remote, opts: SyncOptions, create: bool = False, timeout: float | None = None
) -> Session:
    """A session with ``remote``; ``timeout``: its idle timeout (:func:`idle_timeout`)."""
    transport = open_transport(
        remote.url,
        opts.remote_cmd or remote.remote_cmd,
        opts.accept_new_host_key,
        timeout,
        opts.key_passphrase,
    )
    transport.peer = f"the remote {remote.label}"
    conn = Connection(transport)
    try:
        conn.send_json(p.HELLO, p.hello_payload("client", create=create))
        conn.flush()
        hello = conn.expect(p.HELLO).json()
        p.check_hello(hello)
        faults.point("session-open")
        raw_refs = conn.expect(p.REFS).json().get("refs", {})
    except TransportClosed as exc:
        transport.close()
        detail = transport.stderr_text.strip().splitlines()
        raise TransportClosed(remote.label, detail[-1] if detail else exc.detail) from None
    except Exception:
        transport.close()
        raise
    except BaseException:  # Ctrl-C: stop the remote now
        transport.abort()
        raise
    try:
        refs = _parse_refs(raw_refs)
    except BaseException:
        transport.close()
        raise
    return Session(transport, conn, hello, refs, remote.label)


def _parse_refs(raw_refs: object) -> dict[bytes, bytes]:
    if not isinstance(raw_refs, dict):
        raise p.ProtocolError("the remote sent a malformed ref list")
    refs = {}
    for name, value in raw_refs.items():
        if not isinstance(name, str):
            raise p.ProtocolError("the remote sent a malformed ref list")
        refs[name.encode()] = p.parse_oid(value, "REFS")
    return refs


def _tick(opts: SyncOptions) -> Callable[[int, int], None] | None:
    return opts.progress.tick if opts.progress is not None else None


def _tracking(repo: Repository, remote: Remote) -> bytes | None:
    """Where refs/remotes/NAME/main points (None: unnamed remote or never fetched)."""
    ref = remote.tracking_ref
    if ref is None:
        return None
    return repo.gitdb.ref(ref)


def _stored_commit(repo: Repository, oid: bytes) -> bool:
    """Whether ``oid`` is already stored (so it was validated when it arrived, or made
    here); a stored object that is not a commit is the remote's error."""
    db = repo.gitdb
    if not db.has(oid):
        return False
    try:
        db.commit(oid)
    except DamagedRepository:
        raise p.ProtocolError(
            f"the remote's branch names {oid.decode()}, which is not a commit; nothing was changed"
        ) from None
    return True


def _set_tracking(repo: Repository, remote: Remote, value: bytes | None, why: str) -> None:
    """Move refs/remotes/NAME/main, only ever onto a commit that is stored."""
    ref = remote.tracking_ref
    if ref is None or value is None:
        return
    if not _stored_commit(repo, value):
        raise p.ProtocolError(f"the commit {value.decode()} did not arrive; nothing was changed")
    old = _tracking(repo, remote)
    if old != value:
        repo.swap_ref(ref, old, value, why)


Fill = Callable[[IncomingPack, bytes], Prefill | None]


def fetch(
    repo: Repository,
    remote: Remote,
    opts: SyncOptions,
    fill: Fill | None = None,
    session: Session | None = None,
) -> TransferResult:
    """Bring the remote's branch and everything it reaches; move refs/remotes/NAME/main.

    ``fill``, given the validated pack and the new tip, may name working files to
    fill as their chunks arrive (:mod:`vsync.sync.folder_fill`); they are complete
    when this returns. ``session``: one kept open for several requests (else a
    session of its own). An encrypted remote is read through its object store."""
    if session is None and is_encrypted(remote):
        from vsync.sync.crypt.transfer import encrypted_fetch

        return encrypted_fetch(repo, remote, opts)
    t0 = time.monotonic()
    repo.chunks.recover_temp_packs()
    remove_abandoned(repo.control)  # received packs killed transfers left
    if session is None:
        try:
            session = open_session(remote, opts, timeout=idle_timeout(repo.config))
        except p.RemoteError as exc:
            if exc.code != ENCRYPTED_REMOTE:
                raise
            from vsync.sync.crypt.transfer import encrypted_fetch

            return encrypted_fetch(repo, remote, opts)
    result = TransferResult(remote.label, old=_tracking(repo, remote))
    try:
        with session.closing(result):
            remote_main = session.refs.get(BRANCH)
            result.new = remote_main
            if remote_main is None or _stored_commit(repo, remote_main):
                session.bye()
                result.up_to_date = True
            else:
                negotiate_client(session.conn, repo, [remote_main])
                incoming = receive_pack(session.conn, repo)
                try:
                    incoming.validate([remote_main])
                    prefill = None if fill is None else fill(incoming, remote_main)
                    with incoming.missing_chunks() as wanted:
                        if opts.progress is not None:
                            opts.progress.phase(f"Receiving from {remote.label}", len(wanted))
                        if prefill is None:
                            stats = fetch_chunks(session.conn, repo, wanted, _tick(opts))
                        else:
                            order = prefill.wanted(wanted, repo.chunks.has_many)
                            stats = fetch_chunks(
                                session.conn, repo, order, _tick(opts), prefill.put
                            )
                            prefill.complete(repo.chunks)
                    if opts.progress is not None:
                        opts.progress.done()
                    session.bye()
                    with repo.lock(exclusive=False):
                        incoming.commit()
                    result.stats = stats
                    result.stats.objects = incoming.objects
                    result.stats.pack_bytes = incoming.bytes
                finally:
                    incoming.discard()
            _set_tracking(repo, remote, remote_main, f"fetch: from {remote.label}")
    except MemoryError:
        raise p.ProtocolError(
            f"not enough memory to receive from {remote.label}; nothing was changed"
        ) from None
    result.seconds = time.monotonic() - t0
    return result


def _local_path_missing(remote: Remote) -> Path | None:
    if remote.url.kind != "local":
        return None
    path = Path(remote.url.path)
    return None if path.exists() else path


def push(
    repo: Repository,
    remote: Remote,
    opts: SyncOptions,
    create: bool = False,
    session: Session | None = None,
) -> TransferResult:
    """Send the branch; the remote moves it by compare-and-swap or refuses.
    ``session``: one kept open for several requests (else a session of its own)."""
    if session is None and is_encrypted(remote):
        from vsync.sync.crypt.transfer import encrypted_push

        return encrypted_push(repo, remote, opts)
    t0 = time.monotonic()
    local = repo.head()
    if local is None:
        raise UsageError("nothing to push: there are no commits yet")
    missing_path = _local_path_missing(remote)
    if missing_path is not None and not create:
        raise UsageError(
            f"{missing_path} does not exist; use 'vsync push --create' to make a bare "
            "repository there"
        )
    require_hook_ok(repo, "pre-push", remote.label, str(remote.url))
    if session is None:
        try:
            session = open_session(remote, opts, create=create, timeout=idle_timeout(repo.config))
        except p.RemoteError as exc:
            if exc.code != ENCRYPTED_REMOTE:
                raise
            from vsync.sync.crypt.transfer import encrypted_push

            return encrypted_push(repo, remote, opts)
    result = TransferResult(remote.label, new=local)
    with session.closing(result):
        conn = session.conn
        remote_main = session.refs.get(BRANCH)
        result.old = remote_main
        if remote_main == local:
            session.bye()
            result.up_to_date = True
        else:
            if remote_main is not None and (
                not repo.gitdb.has(remote_main) or not is_ancestor(repo, remote_main, local)
            ):
                session.bye()
                raise StoppedError(REJECTED)
            update = {
                "ref": BRANCH.decode(),
                "old": remote_main.decode() if remote_main else None,
                "new": local.decode(),
            }
            conn.send_json(p.PUSH, update)
            conn.flush()
            _check_result(conn.expect(p.RESULT).json())
            haves = [v for v in session.refs.values() if isinstance(repo.gitdb.find(v), Commit)]
            thin = p.peer_has(session.hello, p.THIN_PACK)
            sent = send_pack(conn, repo, [local], haves, thin)
            label = f"Sending to {remote.label}"
            progress = opts.progress
            if progress is not None:
                progress.phase(label, 0)  # the total when the server says it (want-total-v1)

            def total(chunks: int, _raw_bytes: int) -> None:
                if progress is not None:
                    progress.phase(label, chunks)

            announced = p.peer_has(session.hello, p.WANT_TOTAL_V1)
            with ReadableChunks(repo, [local], sent.sent) as readable:
                stats = serve_chunks(
                    conn, repo, readable, _tick(opts), total if announced else None
                )
            if opts.progress is not None:
                opts.progress.done()
            stats.objects, stats.pack_bytes = sent.objects, sent.pack_bytes
            result.stats = stats
            conn.send_json(p.UPDATE_REF, update)
            conn.flush()
            _check_result(conn.expect(p.RESULT).json())
        _set_tracking(repo, remote, local, f"push: to {remote.label}")
    result.seconds = time.monotonic() - t0
    return result


def _check_result(info: dict[str, Any]) -> None:
    if info.get("ok"):
        return
    code = info.get("code")
    message = str(info.get("message") or "the remote refused the push")
    if code == "non-fast-forward":
        raise StoppedError(REJECTED)
    raise StoppedError(f"the remote refused the push: {message}")
