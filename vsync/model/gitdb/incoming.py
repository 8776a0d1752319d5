"""A git pack received from a peer, held outside the object store until it is accepted.

:meth:`ReceivedPack.open` checks the pack file against the bounds of
:mod:`.received` and indexes it; the receiver then reads objects through
:meth:`ReceivedPack.find`, which looks in the pack first and then in the
repository's store, and finally :meth:`ReceivedPack.add_to_store` moves the
pack in (thin-pack bases are copied into it, as git completes a thin pack).

A bad object *in the pack* is the peer's fault: :class:`~.received.PackRefused`
(exit 1). A bad object in the repository's own store is damage
(:class:`~vsync.errors.GitObjectDamaged`, exit 3), as for every other read.

Received packs wait in ``incoming/`` of the control folder as
``in-<random>.pack`` (and its ``.idx``). :func:`create_incoming` creates one
flocked, as temp chunk packs are (:mod:`vsync.store.templock`); its receiver
holds that flock until the files are gone. :func:`remove_abandoned` (every
transfer that receives, and gc) removes the files of packs whose flock is
free: left by a transfer that was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from dulwich.objects import ObjectID
from dulwich.pack import Pack

from vsync.errors import GitObjectDamaged
from vsync.model.gitdb.db import GitDB
from vsync.model.gitdb.guard import drop_traceback
from vsync.model.gitdb.lockfiles import write_locked
from vsync.model.gitdb.reader import ObjectReader
from vsync.model.gitdb.received import PackRefused, receive_pack_file
from vsync.model.gitdb.types import GitObject, is_object_id
from vsync.store import templock

INCOMING = "incoming"
GUARD = "incoming.lock"  # beside incoming/, which holds only received packs
_PREFIX = "in-"


def create_incoming(control: Path) -> tuple[Path, io.FileIO]:
    """A new received pack's base path (``incoming/in-<random>``) and its ``.pack``
    file, created empty and flocked: hold it open until the files are removed."""
    folder = control / INCOMING
    folder.mkdir(exist_ok=True)
    base = folder / f"{_PREFIX}{secrets.token_hex(8)}"
    return base, templock.create_locked(Path(f"{base}.pack"), control / GUARD)


def remove_incoming(base: Path) -> None:
    """Delete the files of the received pack at ``base`` (its receiver holds its flock)."""
    for suffix in (".idx.lock", ".idx", ".pack"):  # the .pack last: it is what is locked
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{base}{suffix}")


def remove_abandoned(control: Path) -> list[str]:
    """Remove the received packs in ``incoming/`` no live transfer holds; their names."""
    folder = control / INCOMING
    removed = []
    for name, fd in templock.abandoned(
        folder, lambda n: n.startswith(_PREFIX) and n.endswith(".pack"), control / GUARD
    ):
        try:
            remove_incoming(folder / name[: -len(".pack")])
            removed.append(f"{INCOMING}/{name}")
        finally:
            os.close(fd)
    if not folder.is_dir():
        return removed
    # An index whose pack is gone (its transfer was killed while removing them). Listed
    # while no pack can be created: a live transfer's pack is always listed with its index.
    with templock.creation_guard(control / GUARD, fcntl.LOCK_EX):
        left = os.listdir(folder)
        packs = {n[: -len(".pack")] for n in left if n.endswith(".pack")}
        for name in left:
            base = name.split(".", 1)[0]
            if name.startswith(_PREFIX) and not name.endswith(".pack") and base not in packs:
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)
                    removed.append(f"{INCOMING}/{name}")
    return removed


class ReceivedPack:
    """A checked and indexed pack file ``<base>.pack`` / ``<base>.idx`` beside the store."""

    def __init__(self, db: GitDB, base: str, pack: Pack, objects: int) -> None:
        self._db = db
        self._base = base
        self._pack: Pack | None = pack
        self._reader = ObjectReader(pack)  # type: ignore[arg-type]  # get_raw and `in` suffice
        self.objects = objects  # counted from the pack itself

    @classmethod
    def open(cls, db: GitDB, base: str) -> ReceivedPack:
        """Check ``<base>.pack`` and write its index; PackRefused if it breaks a rule."""
        store = db._store
        summary = receive_pack_file(
            base + ".pack",
            base + ".idx",
            store.object_format,
            lambda binsha: ObjectID(binsha.hex().encode()) in store,
            store.get_raw,
        )
        try:
            pack = Pack(base, object_format=store.object_format, resolve_ext_ref=store.get_raw)
        except Exception as exc:  # the conversion layer: what dulwich cannot open is refused
            drop_traceback(exc)
            raise PackRefused(
                f"the remote sent an unreadable git pack ({type(exc).__name__}); "
                "nothing was changed"
            ) from None
        return cls(db, base, pack, summary.objects)

    def _open_pack(self) -> Pack:
        if self._pack is None:
            raise RuntimeError("the received pack is closed")
        return self._pack

    def has(self, oid: bytes) -> bool:
        """Whether the pack itself holds ``oid``."""
        return is_object_id(oid) and ObjectID(oid) in self._open_pack()

    def ids(self) -> Iterator[bytes]:
        """The id of every object in the pack."""
        return iter(list(self._open_pack()))

    def _from_pack(self, oid: bytes) -> GitObject:
        try:
            return self._reader.read(oid)
        except GitObjectDamaged:
            raise PackRefused(
                f"object {oid.decode()} in the received pack is damaged; nothing was changed"
            ) from None

    def find(self, oid: bytes) -> GitObject | None:
        """``oid`` from the pack, else from the repository's store, else None."""
        if self.has(oid):
            return self._from_pack(oid)
        return self._db.find(oid)

    def raw(self, oid: bytes) -> tuple[int, bytes] | None:
        """Type number and bytes of ``oid`` as the pack holds it (verified), or None."""
        if not self.has(oid):
            return None
        try:
            return self._reader._raw(oid, "object")
        except GitObjectDamaged:
            raise PackRefused(
                f"object {oid.decode()} in the received pack is damaged; nothing was changed"
            ) from None

    def add_to_store(self) -> None:
        """Move the pack into the repository's object store (completing a thin pack)."""
        self.close()
        if self.objects:
            store = self._db._store

            def add() -> None:
                with open(self._base + ".pack", "rb") as f:
                    store.add_thin_pack(f.read, None)  # its index through a lock file

            write_locked(self._db.control, add)

    def close(self) -> None:
        pack, self._pack = self._pack, None
        if pack is not None:
            with contextlib.suppress(BufferError, OSError):
                pack.close()
