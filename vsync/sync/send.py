"""``vsync sync``'s one session: the commit streamed to the remote, then fetch and push.

Without ``send-v1`` a sync is three steps one after the other, each transfer
in a session of its own: commit, pull, push, and the push reads back and sends
every chunk the commit just stored. With a server that lists ``send-v1``
(docs/protocol.md, "Send") the session is opened first and kept:

1. while the commit reads the folder, each chunk it stores as new is also
   sent to the server (:mod:`vsync.sync.offer`), so chunking, hashing and
   compressing happen once and the network works while the disk is read;
2. OFFER_END; the server answers with its refs as they are now;
3. the fetch and the push run on the same session; the push's CHUNK_WANTs
   find the offered chunks stored and ask for (almost) nothing.

The commit never depends on the remote: a session that cannot be opened, or
fails while the commit runs, only means the chunks travel the ordinary way
afterwards (and the fetch that follows reports a remote that is gone).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from vsync.errors import VsyncError
from vsync.model.config import idle_timeout
from vsync.model.repository import Repository
from vsync.sync import protocol as p
from vsync.sync.client import Session, SyncOptions, open_session
from vsync.sync.crypt.detect import is_encrypted
from vsync.sync.errors import TransportError
from vsync.sync.offer import ChunkOffer, OfferStats
from vsync.sync.remotes import Remote

Warn = Callable[[str], None]


@dataclass
class Sending:
    """The kept session of a sync and what was offered on it."""

    session: Session | None = None
    offer: ChunkOffer | None = None
    stats: OfferStats = field(default_factory=OfferStats)
    sessions: int = 0  # sessions this sync opened (1 with send-v1, else 2)
    server_done: bool = False  # the server ended the session (it does after a push)

    def end_offer(self, warn: Warn) -> Session | None:
        """OFFER_END and the fresh refs; the session to go on with, or None when the
        offer failed (then it is closed; the sync goes on without it)."""
        offer, session = self.offer, self.session
        self.offer = None
        if offer is None or session is None:
            return session
        try:
            session.refs = offer.finish()
        except VsyncError as exc:
            warn(f"the remote took no more chunks during the commit ({exc}); sending them now")
            self.drop()
            return None
        except BaseException:
            self.drop()
            raise
        finally:
            self.stats = offer.stats
        return session

    def drop(self) -> None:
        """Stop the session at once (a request may be half sent)."""
        if self.offer is not None:
            self.offer.stop()
            self.offer = None
        if self.session is not None:
            self.session.keep_open = False
            self.session.transport.abort()
            self.session = None

    def close(self) -> None:
        """End the session: BYE unless the server ended it (after a push), then close."""
        if self.offer is not None:
            self.drop()
            return
        session, self.session = self.session, None
        if session is None:
            return
        session.keep_open = False
        if not self.server_done:
            with contextlib.suppress(VsyncError, OSError):
                session.bye()
        session.close()


def start_sending(repo: Repository, remote: Remote, opts: SyncOptions, warn: Warn) -> Sending:
    """Open the sync's session; with a ``send-v1`` server, start offering chunks.

    Any failure here leaves a :class:`Sending` with no session: the sync commits
    all the same and opens its sessions afterwards, as without ``send-v1``.
    """
    sending = Sending()
    if is_encrypted(remote):
        return sending  # its object store takes no offered chunks
    timeout = idle_timeout(repo.config)
    try:
        session = open_session(remote, opts, timeout=timeout)
    except VsyncError:
        return sending  # the fetch after the commit reports it
    sending.sessions = 1
    if not p.peer_has(session.hello, p.SEND_V1):
        with contextlib.suppress(VsyncError, OSError):
            session.bye()
        session.close()
        return sending
    session.keep_open = True
    sending.session = session
    keepalive = min(15.0, timeout / 4) if timeout else 15.0
    sending.offer = ChunkOffer(session.conn, keepalive)
    return sending


def is_transport_failure(exc: BaseException) -> bool:
    """Whether a request on a kept session failed because the session itself did."""
    return isinstance(exc, TransportError)
