"""``vsync key add|remove|change|list``: the key files of an encrypted remote
(docs/format.md, "Key file", "Changing keys").

The master key never changes, so no data is re-encrypted: a key is one key file
``keys/<16 hex>`` holding the master key wrapped by one passphrase. Each step is
one atomic operation of the object store, in this order:

- add: write the new key file (write-if-absent: whole or not there), read it
  back and open it with the new passphrase;
- remove: delete the key file, then check that the key that allowed it is
  still there; if a racing remove took that one, put the removed file back
  (write-if-absent of the same bytes), so the remote never ends with no key;
- change: add, then remove the old key. A kill between the two leaves both
  passphrases opening the remote; ``key remove`` (or ``key change`` again)
  finishes the job.

A kill at any instant leaves a remote that at least one of the passphrases
opens. Nothing here allocates what the storage declares: a key file is read
with a bound of one byte more than its size.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from vsync.errors import UnsupportedFormat, UsageError
from vsync.store import faults
from vsync.sync.crypt.detect import MARKER, MARKER_TEXT, plain_repo_id
from vsync.sync.crypt.errors import WrongPassphrase
from vsync.sync.crypt.keys import (
    DEFAULT_LOG2N,
    KEY_FILE_BYTES,
    BadKeyFile,
    KeyParams,
    MasterKey,
    key_params,
    unwrap,
    wrap,
)
from vsync.sync.objstore import ObjectMissing, ObjectStore

MAX_KEYS = 64
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class KeySlot:
    """One key file as ``vsync key list`` shows it (no secret in it)."""

    key_id: str
    params: KeyParams | None  # None: not a key file this vsync reads
    problem: str = ""


@dataclass(frozen=True)
class KeyChange:
    added: str | None = None
    removed: str | None = None


def check_marker(store: ObjectStore, where: str) -> None:
    """Refuse a store that is not an encrypted remote of a format this vsync reads."""
    try:
        marker = store.read(MARKER, 0, 4096)
    except ObjectMissing:
        raise UsageError(f"{where} is not an encrypted vsync remote") from None
    if plain_repo_id(marker) is not None:
        raise UsageError(f"{where} is a plain (unencrypted) remote: it has no passphrases")
    if marker != MARKER_TEXT:
        raise UnsupportedFormat(
            f"{where}: encrypted remote format {marker[:64]!r} is not one this vsync reads; "
            "upgrade vsync"
        )


def _key_names(store: ObjectStore) -> list[str]:
    return store.list("keys/")[:MAX_KEYS]


def _read_key(store: ObjectStore, name: str) -> bytes | None:
    try:
        return store.read(name, 0, KEY_FILE_BYTES + 1)
    except ObjectMissing:
        return None


def list_keys(store: ObjectStore, where: str) -> list[KeySlot]:
    """Every key slot of the remote, in name order, with what its header says."""
    check_marker(store, where)
    slots = []
    for name in _key_names(store):
        data = _read_key(store, name)
        if data is None:
            continue
        key_id = name.split("/", 1)[1]
        try:
            slots.append(KeySlot(key_id, key_params(data)))
        except BadKeyFile as exc:
            slots.append(KeySlot(key_id, None, str(exc)))
    return slots


@dataclass(frozen=True)
class _Opened:
    master: MasterKey
    names: list[str]  # every key file the passphrase opens
    keys: int  # key files in all


def _open(store: ObjectStore, passphrase: str, where: str) -> _Opened:
    """Which key files ``passphrase`` opens (every one is tried: ``remove`` must
    know whether the passphrase opens another than the one it removes)."""
    check_marker(store, where)
    names = _key_names(store)
    master: MasterKey | None = None
    opened = []
    for name in names:
        data = _read_key(store, name)
        if data is None:
            continue
        try:
            key = unwrap(data, passphrase)
        except BadKeyFile:
            continue
        if key is None:
            continue
        if master is not None and key != master:
            continue  # a planted key file of another repository: never trusted
        master = key
        opened.append(name)
    if master is None:
        raise WrongPassphrase(where, len(names))
    return _Opened(master, opened, len(names))


def _check_new(new_passphrase: str) -> None:
    if not new_passphrase:
        raise UsageError("an empty passphrase would protect nothing; give one")


def _write_key(
    store: ObjectStore, master: MasterKey, new_passphrase: str, log2n: int, where: str
) -> str:
    if len(_key_names(store)) >= MAX_KEYS:
        raise UsageError(f"{where} already has {MAX_KEYS} keys; remove one first")
    data = wrap(master, new_passphrase, log2n)
    while True:
        name = f"keys/{secrets.token_hex(8)}"
        if store.write_if_absent(name, data):
            break
    if _read_key(store, name) != data:
        raise UsageError(f"{where} did not keep the new key file {name}; nothing was removed")
    faults.point("key-written")
    return name


def add_key(
    store: ObjectStore,
    passphrase: str,
    new_passphrase: str,
    where: str,
    log2n: int = DEFAULT_LOG2N,
) -> KeyChange:
    """A new key file: the master key under ``new_passphrase`` (``passphrase`` must
    open the remote first)."""
    _check_new(new_passphrase)
    opened = _open(store, passphrase, where)
    name = _write_key(store, opened.master, new_passphrase, log2n, where)
    return KeyChange(added=name.split("/", 1)[1])


def _remove(store: ObjectStore, name: str, keeper: str, where: str) -> None:
    data = _read_key(store, name)
    if data is None:
        raise UsageError(f"{where} has no key {name.split('/', 1)[1]} (see 'vsync key list')")
    faults.point("key-removing")
    store.delete(name)
    if _read_key(store, keeper) is None:
        # a racing remove took the key that allowed this one: put ours back
        store.write_if_absent(name, data)
        raise UsageError(
            f"another client removed key {keeper.split('/', 1)[1]} of {where} meanwhile; "
            f"key {name.split('/', 1)[1]} was kept"
        )


def remove_key(store: ObjectStore, passphrase: str, key_id: str, where: str) -> KeyChange:
    """Delete key ``key_id``. ``passphrase`` must open another key: the last key is
    never removed, and a key does not authorise its own removal."""
    if not _KEY_ID.fullmatch(key_id):
        raise UsageError(f"{key_id!r} is not a key id (16 hex digits; see 'vsync key list')")
    name = f"keys/{key_id}"
    opened = _open(store, passphrase, where)
    if name not in _key_names(store):
        raise UsageError(f"{where} has no key {key_id} (see 'vsync key list')")
    others = [n for n in opened.names if n != name]
    if not others:
        if opened.keys == 1:
            raise UsageError(f"key {key_id} is the last key of {where}; it is never removed")
        raise UsageError(
            f"the passphrase given opens only key {key_id}, the one to remove; "
            "give the passphrase of another key"
        )
    _remove(store, name, others[0], where)
    return KeyChange(removed=key_id)


def change_key(
    store: ObjectStore,
    passphrase: str,
    new_passphrase: str,
    where: str,
    log2n: int = DEFAULT_LOG2N,
) -> KeyChange:
    """Replace the keys ``passphrase`` opens by one under ``new_passphrase``: the
    new key file is written and checked first, then the old ones are deleted."""
    _check_new(new_passphrase)
    opened = _open(store, passphrase, where)
    new = _write_key(store, opened.master, new_passphrase, log2n, where)
    for old in opened.names:
        _remove(store, old, new, where)
    removed = " ".join(name.split("/", 1)[1] for name in opened.names)
    return KeyChange(added=new.split("/", 1)[1], removed=removed)
