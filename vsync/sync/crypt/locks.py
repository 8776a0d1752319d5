"""Lock objects of an object-store remote (docs/format.md, "Remote locks"), after
restic's (doc/design.rst, "Locks"): a push holds a shared lock, ``vsync gc --remote``
an exclusive one, so gc never deletes what a running push may still reference.

A lock is the sealed object ``locks/<16 random hex>`` (kind 5) saying whether it
is exclusive, when it was taken, until when it holds and who holds it. Taking one:
write it (write if absent), then list ``locks/``: any other live lock that
conflicts (one of the two exclusive) makes the taker delete its own and stop
(:class:`RemoteLocked`, exit 1), so of two racing takers neither proceeds wrongly
(at worst both stop). A lock whose expiry has passed, or whose holder was a
process of this host that no longer runs, is stale: it never conflicts, and gc
removes it, saying so. The holder renews its expiry
(compare-and-swap) every :data:`RENEW_SECONDS` while it works, and checks that
its lock is still there before its last step: a holder whose lock was removed as
stale stops (:class:`LockLost`) rather than trusting what it can no longer hold.
A lock that does not open (damaged, or not ours) is never taken for stale: it
blocks until deleted by hand.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass

from vsync.errors import StoppedError
from vsync.sync.crypt.errors import RemoteTampered
from vsync.sync.crypt.seal import KIND_LOCK, ObjectSealer
from vsync.sync.objstore import ObjectMissing, ObjectStore

EXPIRY_SECONDS = 30 * 60  # restic's stale-lock age
RENEW_SECONDS = 5 * 60  # restic refreshes its locks every 5 minutes
MAX_LOCK = 4096
MAX_LOCKS = 1024
PREFIX = "locks/"


class RemoteLocked(StoppedError):
    pass


class LockLost(StoppedError):
    pass


@dataclass(frozen=True)
class LockInfo:
    exclusive: bool
    created: int  # Unix seconds
    expires: int
    holder: str  # "<host> pid <n>", shown in messages

    def encode(self) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "exclusive": self.exclusive,
                "created": self.created,
                "expires": self.expires,
                "holder": self.holder,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, name: str, payload: bytes, sealer: ObjectSealer) -> LockInfo:
        try:
            d = json.loads(payload)
        except ValueError:
            raise sealer.damaged(name, "not a lock record") from None
        if (
            not isinstance(d, dict)
            or d.get("version") != 1
            or not isinstance(d.get("exclusive"), bool)
            or not all(
                isinstance(d.get(k), int) and not isinstance(d.get(k), bool) and d[k] >= 0
                for k in ("created", "expires")
            )
            or not isinstance(d.get("holder"), str)
            or len(d["holder"]) > 256
        ):
            raise sealer.damaged(name, "not a version 1 lock record")
        return cls(d["exclusive"], d["created"], d["expires"], d["holder"])

    @property
    def what(self) -> str:
        kind = "an exclusive lock (gc)" if self.exclusive else "a shared lock (a push)"
        taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.created))
        return f"{kind} of {self.holder}, taken {taken}"


def _holder() -> str:
    return f"{os.uname().nodename[:200]} pid {os.getpid()}"


def is_stale(info: LockInfo, now: int) -> bool:
    """restic's rule: expired, or held by a process of this host that no longer runs
    (a command killed while it held the lock)."""
    if info.expires < now:
        return True
    host, _, pid = info.holder.rpartition(" pid ")
    if host != os.uname().nodename[:200] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def read_locks(
    store: ObjectStore, sealer: ObjectSealer, skip: str | None = None
) -> list[tuple[str, LockInfo | None]]:
    """Every lock but ``skip``: (name, what it says; None if it does not open)."""
    out: list[tuple[str, LockInfo | None]] = []
    for name in store.list(PREFIX)[:MAX_LOCKS]:
        if name == skip:
            continue
        try:
            raw = store.read(name, 0, MAX_LOCK + 1)
            if len(raw) > MAX_LOCK:
                raise sealer.damaged(name, "too long")
            out.append((name, LockInfo.decode(name, sealer.open(KIND_LOCK, name, raw), sealer)))
        except ObjectMissing:
            continue  # released since the listing
        except RemoteTampered:
            out.append((name, None))
    return out


class RemoteLock:
    """A lock this process holds on the remote; release it with :meth:`release`
    (or use it as a context manager)."""

    def __init__(
        self,
        store: ObjectStore,
        sealer: ObjectSealer,
        where: str,
        exclusive: bool,
        notes: list[str] | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.where = where
        self.exclusive = exclusive
        self.name = f"{PREFIX}{secrets.token_hex(8)}"
        self.notes = notes if notes is not None else []
        self._raw: bytes | None = None
        self._renewed = 0.0
        self._take()

    def _sealed(self) -> bytes:
        now = int(time.time())
        info = LockInfo(self.exclusive, now, now + EXPIRY_SECONDS, _holder())
        return self.sealer.seal(KIND_LOCK, self.name, info.encode())

    def _take(self) -> None:
        raw = self._sealed()
        if not self.store.write_if_absent(self.name, raw):
            raise RemoteLocked(f"{self.where}: the lock name {self.name} is taken; try again")
        self._raw, self._renewed = raw, time.monotonic()
        try:
            self._check_others()
        except BaseException:
            self.release()
            raise

    def _check_others(self) -> None:
        now = int(time.time())
        for name, info in read_locks(self.store, self.sealer, skip=self.name):
            if info is None:
                raise RemoteLocked(
                    f"{self.where} holds a lock that does not open ({name}); if no vsync is "
                    "using the remote, delete that object"
                )
            if is_stale(info, now):
                if self.exclusive and self.store.delete(name):
                    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.expires))
                    why = f"expired {when}" if info.expires < now else "its process is gone"
                    self.notes.append(f"removed the stale lock {name}: {info.what}, {why}")
                continue
            if self.exclusive or info.exclusive:
                doing = "gc" if self.exclusive else "push"
                raise RemoteLocked(
                    f"{self.where} is locked by {info.what} ({name}); "
                    f"nothing was changed; {doing} again once it is done"
                )

    def renew(self, force: bool = False) -> None:
        """Push the expiry on when it is due (every :data:`RENEW_SECONDS`), or now
        with ``force``; :class:`LockLost` if the lock is no longer there."""
        if self._raw is None:
            return
        if not force and time.monotonic() - self._renewed < RENEW_SECONDS:
            return
        raw = self._sealed()
        if not self.store.compare_and_swap(self.name, self._raw, raw):
            self._raw = None
            raise LockLost(
                f"{self.where}: this process's lock {self.name} was removed as stale while it "
                "worked; stopping before anything depends on it (run the command again)"
            )
        self._raw, self._renewed = raw, time.monotonic()

    def release(self) -> None:
        if self._raw is not None:
            self._raw = None
            self.store.delete(self.name)

    def __enter__(self) -> RemoteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Unlocked:
    """What :func:`remove_locks` did (each lock with what it says; None: it did not
    open)."""

    stale: list[tuple[str, LockInfo]]  # removed
    live: list[tuple[str, LockInfo | None]]  # removed (``everything``) or kept
    live_removed: bool


def remove_locks(store: ObjectStore, sealer: ObjectSealer, everything: bool) -> Unlocked:
    """restic's ``unlock``: delete every stale lock (expired, or of a process of this
    host that is gone); with ``everything`` (restic's ``--remove-all``) every lock,
    live or not opening too. A holder whose lock was removed stops at its next
    renewal (:class:`LockLost`): a push before it moves the branch, a gc before its
    next delete."""
    now = int(time.time())
    out = Unlocked([], [], everything)
    for name, info in read_locks(store, sealer):
        if info is not None and is_stale(info, now):
            if store.delete(name):
                out.stale.append((name, info))
        elif everything:
            if store.delete(name):
                out.live.append((name, info))
        else:
            out.live.append((name, info))
    return out
