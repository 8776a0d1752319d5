"""An opened object-store remote, encrypted or plain: its seal (the master key, or
the null seal of a plain remote), its branch record (with the rollback check) and
the index of the chunks it holds (docs/format.md, "Encrypted remotes", "Plain
remotes")."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vsync.errors import UsageError
from vsync.model.repository import Repository
from vsync.store.chunkstore import replace_durably
from vsync.store.keyed_id import plain_id
from vsync.sync.crypt.detect import MARKER, plain_repo_id
from vsync.sync.crypt.errors import NoPassphrase, RolledBack, WrongPassphrase
from vsync.sync.crypt.keyring import check_marker
from vsync.sync.crypt.keys import KEY_FILE_BYTES, BadKeyFile, MasterKey, unwrap
from vsync.sync.crypt.seal import (
    EMPTY_BRANCH,
    KIND_BRANCH,
    KIND_INDEX,
    BranchRecord,
    IndexEntry,
    ObjectSealer,
    PlainSealer,
    Sealer,
    parse_index,
)
from vsync.sync.objstore import ObjectMissing, ObjectStore
from vsync.sync.objstore.folder import FolderStore
from vsync.sync.remotes import Remote
from vsync.sync.url import RemoteURL

if TYPE_CHECKING:
    from vsync.sync.client import SyncOptions

BRANCH_NAME = "refs/main"
MAX_KEYS = 64
MAX_SMALL_OBJECT = 64 * 1024 * 1024  # a branch record or an index, sealed


def passphrase_from(source: Callable[[], str] | None, where: str) -> str:
    """The passphrase: from ``source`` (the CLI's --password-file or prompt), else
    ``VSYNC_PASSWORD``."""
    if source is not None:
        return source()
    env = os.environ.get("VSYNC_PASSWORD")
    if env is None:
        raise NoPassphrase(where)
    return env


class CountingStore:
    """An object store that counts the bytes it sends and receives (the transfer's
    ``wire_sent`` and ``wire_received``)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.sent = 0
        self.received = 0
        self._lock = threading.Lock()  # uploads run on several threads (S3)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.read(name, offset, length)
        with self._lock:
            self.received += len(data)
        return data

    def write_if_absent(self, name: str, data: bytes | bytearray) -> bool:
        written = self.inner.write_if_absent(name, data)
        with self._lock:
            self.sent += len(data) if written else 0
        return written

    def compare_and_swap(self, name: str, old: bytes | None, new: bytes) -> bool:
        with self._lock:
            self.sent += len(new)
        return self.inner.compare_and_swap(name, old, new)

    def delete(self, name: str) -> bool:
        return self.inner.delete(name)


def store_for(remote: Remote, opts: SyncOptions) -> ObjectStore:
    """The folder of a path remote, a bucket of an ``s3://`` remote, or ``vsync serve``
    as an object store over SSH."""
    if remote.url.kind == "local":
        return FolderStore(Path(remote.url.path))
    if remote.url.kind == "s3":
        return open_s3(remote.url, remote.endpoint)
    from vsync.sync.objstore.served import ServedStore

    return ServedStore.open(
        remote.url, opts.remote_cmd or remote.remote_cmd, opts.accept_new_host_key
    )


def open_s3(url: RemoteURL, endpoint: str | None = None) -> ObjectStore:
    """The bucket of ``url``, reached as :mod:`vsync.sync.objstore.s3config` says."""
    from vsync.sync.objstore.s3 import S3Store  # obstore loads only when needed
    from vsync.sync.objstore.s3config import s3_settings

    return S3Store(url, s3_settings(endpoint))


def open_key(store: ObjectStore, passphrase: str, where: str) -> MasterKey:
    """The master key of the encrypted remote in ``store`` (its marker checked by the
    caller) that ``passphrase`` opens."""
    names = store.list("keys/")[:MAX_KEYS]
    for name in names:
        try:
            data = store.read(name, 0, KEY_FILE_BYTES + 1)
            key = unwrap(data, passphrase)
        except (BadKeyFile, ObjectMissing):  # not a key file; removed meanwhile
            continue
        if key is not None:
            return key
    raise WrongPassphrase(where, len(names))


def open_sealer(
    store: ObjectStore, passphrase: Callable[[], str] | None, where: str
) -> ObjectSealer:
    """The seal of the remote in ``store``, as its marker says: a plain remote's null
    seal (no passphrase asked), else the master key the passphrase opens."""
    try:
        marker = store.read(MARKER, 0, 4096)
    except ObjectMissing:
        raise UsageError(
            f"{where} is not a vsync remote (it holds no {MARKER}); "
            "make one with 'vsync init --bare URL'"
        ) from None
    repo_id = plain_repo_id(marker)
    if repo_id is not None:
        return PlainSealer(repo_id)
    check_marker(store, where)  # the format is known before a passphrase is asked
    return Sealer(open_key(store, passphrase_from(passphrase, where), where))


class EncryptedRemote:
    """An object-store remote, encrypted or plain (``sealer.encrypted`` says which):
    the one code path of both."""

    def __init__(self, repo: Repository, remote: Remote, opts: SyncOptions) -> None:
        self.repo = repo
        self.remote = remote
        self.store = CountingStore(store_for(remote, opts))
        try:
            self.sealer = open_sealer(self.store, opts.passphrase, remote.label)
        except BaseException:
            self.close()
            raise
        repo_id = self.sealer.repo_id.hex()
        self.state = repo.control / "encrypted" / repo_id
        try:
            self._check_identity(repo_id)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self.store.inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EncryptedRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_identity(self, repo_id: str) -> None:
        """A named remote must stay the same repository: its id is remembered."""
        if self.remote.name is None:
            return
        section = ("remote", self.remote.name)
        known = self.repo.config.get(section, "repositoryId")
        if known is None:
            self.repo.config.set(section, "repositoryId", repo_id)
            self.repo.config.save()
        elif known != repo_id:
            raise RolledBack(
                f"{self.remote.label} now holds repository {repo_id[:16]}, "
                f"not {known[:16]} as before",
                self.sealer.kind,
            )

    # -- the branch record ----------------------------------------------------
    def read_branch(self) -> tuple[bytes | None, BranchRecord]:
        """The stored bytes of ``refs/main`` (for compare-and-swap) and what they say,
        refused if older than a record this client saw before."""
        try:
            raw: bytes | None = self.store.read(BRANCH_NAME, 0, MAX_SMALL_OBJECT + 1)
        except ObjectMissing:
            raw = None
        if raw is None:
            record = EMPTY_BRANCH
            payload = b""
        else:
            if len(raw) > MAX_SMALL_OBJECT:
                raise self.sealer.damaged(BRANCH_NAME, "too long")
            payload = self.sealer.open(KIND_BRANCH, BRANCH_NAME, raw)
            record = BranchRecord.decode(payload, self.sealer)
        seen = self._seen()
        if seen is not None:
            counter, digest = seen
            if record.counter < counter:
                raise RolledBack(
                    f"its counter is {record.counter}, this client saw {counter}", self.sealer.kind
                )
            if record.counter == counter and plain_id(payload).hex() != digest:
                raise RolledBack(
                    f"record {counter} differs from the one this client saw", self.sealer.kind
                )
        return raw, record

    def _seen(self) -> tuple[int, str] | None:
        try:
            text = (self.state / "seen").read_text()
            counter, digest = text.split()
            return int(counter), digest
        except (FileNotFoundError, ValueError):
            return None

    def remember(self, record: BranchRecord) -> None:
        """Note ``record`` as the newest this client has seen."""
        seen = self._seen()
        if seen is not None and seen[0] > record.counter:
            return
        self.state.mkdir(parents=True, exist_ok=True)
        digest = plain_id(record.encode() if record.counter else b"").hex()
        replace_durably(self.state / "seen", f"{record.counter} {digest}\n".encode())

    # -- what the remote holds ------------------------------------------------
    def held_chunks(self) -> dict[bytes, IndexEntry]:
        """Every chunk the remote's indexes name (indexes read once, then cached)."""
        cache = self.state / "index"
        cache.mkdir(parents=True, exist_ok=True)
        held: dict[bytes, IndexEntry] = {}
        for name in self.store.list("index/"):
            hexname = name.split("/", 1)[1]
            cached = cache / hexname
            try:
                payload = cached.read_bytes()
            except FileNotFoundError:
                raw = self.store.read(name, 0, MAX_SMALL_OBJECT + 1)
                if len(raw) > MAX_SMALL_OBJECT:
                    raise self.sealer.damaged(name, "too long") from None
                payload = self.sealer.open(KIND_INDEX, name, raw)
                parse_index(hexname, payload, self.sealer)
                tmp = cache / f".{hexname}.tmp"
                tmp.write_bytes(payload)
                os.replace(tmp, cached)
            for entry in parse_index(hexname, payload, self.sealer):
                held.setdefault(entry.chunk_id, entry)
        return held
