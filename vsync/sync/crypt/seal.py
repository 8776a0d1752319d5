"""Sealed objects, chunk pack records, indexes and the branch record
(docs/format.md, "Sealed object", "Chunk pack", "Chunk pack index", "Branch record").

Every function here takes the bytes as stored and either returns what they
hold or raises :class:`RemoteTampered`: nothing read from the storage is
trusted until its tag is checked, and every length is bounded first.

Two sealers lay out the same objects: :class:`Sealer` encrypts (an encrypted
remote), :class:`PlainSealer` is the null seal of a plain remote (docs/format.md,
"Plain remotes"): the same layout in clear, each object and pack record closed by
a BLAKE3 check instead of an AEAD tag, so a changed byte is still refused. The
code above them (:mod:`.transfer`, :mod:`.check`) is one for both.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vsync.store.codec import MAX_CHUNK_BYTES, max_stored_len
from vsync.store.keyed_id import keyed_id, plain_id, plain_id_of
from vsync.sync.crypt.errors import PlainDamaged, RemoteTampered
from vsync.sync.crypt.keys import MasterKey, full_pack_padded, padded

MAGIC = b"VSYNCOBJ"
HEAD = struct.Struct(">8sBB2x")
NONCE, TAG = 12, 16
KIND_INDEX, KIND_GIT, KIND_BRANCH, KIND_PACK, KIND_LOCK = 1, 2, 3, 4, 5
AD_PREFIX = b"vsync-v1"
RECORD_HEAD = struct.Struct(">32sBI")  # chunk id, compression, raw_len
INDEX_ENTRY = struct.Struct(">32sQIIB")  # chunk id, offset, sealed length, raw_len, compression
MAX_RECORDS = 4096
_ENCRYPT_INTO = hasattr(ChaCha20Poly1305, "encrypt_into")  # cryptography 45 and later
PACK_BODY_BYTES = 16 * 1024 * 1024
PLAIN_MAGIC = b"VSYNCPLN"
CHECK = 16  # a plain object's or record's BLAKE3 check (the first 16 bytes of the hash)
PLAIN_NAME_KEY = plain_id(b"vsync-v1 plain remote names")


class ObjectSealer(Protocol):
    """What :mod:`.transfer` and :mod:`.check` need of a remote's seal."""

    encrypted: bool
    kind: str  # "encrypted" or "plain": how messages name the remote
    repo_id: bytes
    pack_head: bytes  # the first bytes of every chunk pack

    def damaged(self, name: str, why: str) -> RemoteTampered:
        """The error for object ``name`` of this remote, which does not open or parse
        (``why``), worded for its kind of remote."""
        ...

    def name_id(self, *parts: bytes) -> str: ...

    def stored_lens(self, length: int) -> tuple[int, ...]:
        """The lengths a chunk pack of ``length`` bytes (head and records) may be
        stored at: padded as the last pack of a push, or as a full one."""
        ...

    def seal(self, kind: int, name: str, payload: bytes) -> bytes: ...

    def open(self, kind: int, name: str, data: bytes) -> bytes: ...

    def seal_pack(
        self, name: str, records: list[tuple[bytes, int, int, bytes]], full: bool = False
    ) -> tuple[bytearray, bytes]: ...

    def open_record(
        self, name: str, i: int, sealed: bytes | memoryview, entry: IndexEntry
    ) -> tuple[int, memoryview]: ...


class Sealer:
    """Seals and opens the objects of one encrypted remote."""

    encrypted = True
    kind = "encrypted"
    pack_head = HEAD.pack(MAGIC, 1, KIND_PACK)

    def damaged(self, name: str, why: str) -> RemoteTampered:
        return RemoteTampered(name, why)

    def __init__(self, key: MasterKey) -> None:
        self.key = key
        self.repo_id = key.repo_id
        self._aead = ChaCha20Poly1305(key.object_key)
        self._name_key = key.name_key

    def name_id(self, *parts: bytes) -> str:
        return keyed_id(self._name_key, *parts).hex()

    def _ad(self, head: bytes, name: str, extra: bytes = b"") -> bytes:
        return AD_PREFIX + self.key.repo_id + head + name.encode() + extra

    def stored_lens(self, length: int) -> tuple[int, ...]:
        return padded(length), full_pack_padded(length)

    # -- one sealed object ---------------------------------------------------
    def seal(self, kind: int, name: str, payload: bytes) -> bytes:
        head = HEAD.pack(MAGIC, 1, kind)
        plain_len = padded(8 + len(payload))
        plain = struct.pack(">Q", len(payload)) + payload + bytes(plain_len - 8 - len(payload))
        nonce = os.urandom(NONCE)
        return head + nonce + self._aead.encrypt(nonce, plain, self._ad(head, name))

    def open(self, kind: int, name: str, data: bytes) -> bytes:
        if len(data) < HEAD.size + NONCE + TAG + 8:
            raise RemoteTampered(name, "too short")
        head = data[: HEAD.size]
        magic, version, got_kind = HEAD.unpack(head)
        if magic != MAGIC or version != 1 or got_kind != kind:
            raise RemoteTampered(name, "not a version 1 object of its kind")
        nonce = data[HEAD.size : HEAD.size + NONCE]
        try:
            plain = self._aead.decrypt(nonce, data[HEAD.size + NONCE :], self._ad(head, name))
        except InvalidTag:
            raise RemoteTampered(name) from None
        (length,) = struct.unpack_from(">Q", plain)
        if length > len(plain) - 8 or any(plain[8 + length :]):
            raise RemoteTampered(name, "bad length or padding")
        return plain[8 : 8 + length]

    # -- chunk packs -----------------------------------------------------------
    def seal_pack(
        self, name: str, records: list[tuple[bytes, int, int, bytes]], full: bool = False
    ) -> tuple[bytearray, bytes]:
        """A chunk pack of ``records`` (id, raw_len, compression, stored payload)
        and its index payload. Each record is sealed straight into the pack's
        one buffer (its padding included): no piece is copied twice.

        ``full``: the pack was closed because the next record would not fit, so
        its size tells how full it is, not where a file or a push ends; it is
        padded to a multiple of 4 KiB. Any other pack (the last of a push) is
        padded with Padmé."""
        head = HEAD.pack(MAGIC, 1, KIND_PACK)
        end = len(head) + sum(NONCE + RECORD_HEAD.size + len(r[3]) + TAG for r in records)
        out = bytearray(full_pack_padded(end) if full else padded(end))
        out[: len(head)] = head
        view = memoryview(out)
        offset = len(head)
        entries = [struct.pack(">BI", 1, len(records))]
        for i, (cid, raw_len, compression, payload) in enumerate(records):
            nonce = os.urandom(NONCE)
            body = RECORD_HEAD.pack(cid, compression, raw_len) + payload
            length = NONCE + len(body) + TAG
            view[offset : offset + NONCE] = nonce
            ad = self._ad(head, name, _u32(i))
            if _ENCRYPT_INTO:
                self._aead.encrypt_into(nonce, body, ad, view[offset + NONCE : offset + length])
            else:
                view[offset + NONCE : offset + length] = self._aead.encrypt(nonce, body, ad)
            entries.append(INDEX_ENTRY.pack(cid, offset, length, raw_len, compression))
            offset += length
        view.release()
        return out, b"".join(entries)

    def open_record(
        self, name: str, i: int, sealed: bytes | memoryview, entry: IndexEntry
    ) -> tuple[int, memoryview]:
        """Record ``i`` of pack ``name``: (compression, stored payload, a view of the
        opened record: not copied again), checked against its index ``entry``."""
        head = HEAD.pack(MAGIC, 1, KIND_PACK)
        try:
            body = self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], self._ad(head, name, _u32(i)))
        except InvalidTag:
            raise RemoteTampered(f"{name} (record {i})") from None
        cid, compression, raw_len = RECORD_HEAD.unpack_from(body)
        if (cid, compression, raw_len) != (entry.chunk_id, entry.compression, entry.raw_len):
            raise RemoteTampered(f"{name} (record {i})", "does not match its index")
        return compression, memoryview(body)[RECORD_HEAD.size :]


class PlainSealer:
    """The null seal of a plain remote: nothing encrypted, nothing padded, every
    object and record checked by BLAKE3 over its content, its name and the
    remote's repository id (a byte changed, an object moved to another name or
    taken from another remote is refused)."""

    encrypted = False
    kind = "plain"
    pack_head = HEAD.pack(PLAIN_MAGIC, 1, KIND_PACK)

    def damaged(self, name: str, why: str) -> RemoteTampered:
        return PlainDamaged(name, why)

    def __init__(self, repo_id: bytes) -> None:
        self.repo_id = repo_id

    def name_id(self, *parts: bytes) -> str:
        return keyed_id(PLAIN_NAME_KEY, *parts).hex()

    def stored_lens(self, length: int) -> tuple[int, ...]:
        return (length,)

    def _check(self, head: bytes, name: str, extra: bytes, *body: bytes | memoryview) -> bytes:
        ad = AD_PREFIX + self.repo_id + head + name.encode() + extra
        return plain_id_of(ad, *body)[:CHECK]

    def seal(self, kind: int, name: str, payload: bytes) -> bytes:
        head = HEAD.pack(PLAIN_MAGIC, 1, kind)
        return head + payload + self._check(head, name, b"", payload)

    def open(self, kind: int, name: str, data: bytes) -> bytes:
        if len(data) < HEAD.size + CHECK:
            raise PlainDamaged(name, "too short")
        head = data[: HEAD.size]
        magic, version, got_kind = HEAD.unpack(head)
        if magic != PLAIN_MAGIC or version != 1 or got_kind != kind:
            raise PlainDamaged(name, "not a version 1 plain object of its kind")
        payload = data[HEAD.size : len(data) - CHECK]
        if self._check(head, name, b"", payload) != data[len(data) - CHECK :]:
            raise PlainDamaged(name, "its BLAKE3 check does not match its content")
        return payload

    def seal_pack(
        self, name: str, records: list[tuple[bytes, int, int, bytes]], full: bool = False
    ) -> tuple[bytearray, bytes]:
        head = self.pack_head
        out = bytearray(head)
        entries = [struct.pack(">BI", 1, len(records))]
        for i, (cid, raw_len, compression, payload) in enumerate(records):
            offset = len(out)
            record_head = RECORD_HEAD.pack(cid, compression, raw_len)
            out += record_head
            out += payload
            out += self._check(head, name, _u32(i), record_head, payload)
            entries.append(INDEX_ENTRY.pack(cid, offset, len(out) - offset, raw_len, compression))
        return out, b"".join(entries)

    def open_record(
        self, name: str, i: int, sealed: bytes | memoryview, entry: IndexEntry
    ) -> tuple[int, memoryview]:
        view = memoryview(sealed)
        if len(view) < RECORD_HEAD.size + CHECK:
            raise PlainDamaged(f"{name} (record {i})", "too short")
        body = view[: len(view) - CHECK]
        if self._check(self.pack_head, name, _u32(i), body) != bytes(view[len(view) - CHECK :]):
            raise PlainDamaged(f"{name} (record {i})", "its BLAKE3 check does not match")
        cid, compression, raw_len = RECORD_HEAD.unpack_from(body)
        if (cid, compression, raw_len) != (entry.chunk_id, entry.compression, entry.raw_len):
            raise PlainDamaged(f"{name} (record {i})", "does not match its index")
        return compression, body[RECORD_HEAD.size :]


def max_sealed_len(raw_len: int) -> int:
    """The longest a sealed record of a chunk of ``raw_len`` bytes may be: what an
    index declares is bounded by it before anything is read (a plain record, with
    no nonce and a check as long as the tag, is shorter)."""
    return NONCE + RECORD_HEAD.size + max_stored_len(raw_len) + TAG


def _u32(i: int) -> bytes:
    return struct.pack(">I", i)


@dataclass(frozen=True)
class IndexEntry:
    chunk_id: bytes
    pack: str  # the pack's 64 hex
    position: int
    offset: int
    length: int
    raw_len: int
    compression: int


def parse_index(hexname: str, payload: bytes, sealer: ObjectSealer) -> list[IndexEntry]:
    """The entries of index ``hexname``; its name must be the keyed id of its chunk ids."""
    where = f"index/{hexname}"
    if len(payload) < 5 or payload[0] != 1:
        raise sealer.damaged(where, "not a version 1 index")
    (count,) = struct.unpack_from(">I", payload, 1)
    if count > MAX_RECORDS or len(payload) != 5 + count * INDEX_ENTRY.size:
        raise sealer.damaged(where, "bad record count")
    out = []
    for i in range(count):
        cid, offset, length, raw_len, compression = INDEX_ENTRY.unpack_from(
            payload, 5 + i * INDEX_ENTRY.size
        )
        if raw_len > MAX_CHUNK_BYTES or length > max_sealed_len(raw_len):
            raise sealer.damaged(where, f"record {i} is longer than its chunk allows")
        out.append(IndexEntry(cid, hexname, i, offset, length, raw_len, compression))
    if sealer.name_id(b"chunk-pack\0", *(e.chunk_id for e in out)) != hexname:
        raise sealer.damaged(where, "its name is not the id of its chunks")
    return out


@dataclass(frozen=True)
class BranchRecord:
    counter: int
    head: bytes | None  # 40 hex
    git_packs: tuple[tuple[str, bytes], ...]  # (64 hex, commit 40 hex), oldest first

    def encode(self) -> bytes:
        parts = [
            struct.pack(">BQ", 1, self.counter),
            self.head or b"0" * 40,
            struct.pack(">I", len(self.git_packs)),
        ]
        parts.extend(bytes.fromhex(name) + tip for name, tip in self.git_packs)
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes, sealer: ObjectSealer) -> BranchRecord:
        where = "refs/main"
        if len(payload) < 53 or payload[0] != 1:
            raise sealer.damaged(where, "not a version 1 branch record")
        (counter,) = struct.unpack_from(">Q", payload, 1)
        head = payload[9:49]
        (count,) = struct.unpack_from(">I", payload, 49)
        if len(payload) != 53 + 72 * count:
            raise sealer.damaged(where, "bad length")
        packs = []
        for i in range(count):
            at = 53 + 72 * i
            packs.append((payload[at : at + 32].hex(), _oid(payload[at + 32 : at + 72], sealer)))
        return cls(counter, None if head == b"0" * 40 else _oid(head, sealer), tuple(packs))


def _oid(raw: bytes, sealer: ObjectSealer) -> bytes:
    if len(raw) != 40 or not all(c in b"0123456789abcdef" for c in raw):
        raise sealer.damaged("refs/main", "a malformed commit id")
    return raw


EMPTY_BRANCH = BranchRecord(0, None, ())
