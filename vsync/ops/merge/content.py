"""What the merge planner may ask about a flat-map entry's content.

The planner is a pure function of three flat maps and a :class:`ContentSource`;
two sources exist: :class:`RepoContent` reads a repository (manifests and
verified chunks, symlink blobs) and :class:`MemoryContent` holds bytes in a
dict (tests, property checks).

*Text* means: a regular file of at most ``TEXT_LIMIT`` bytes with no NUL byte
in its first 8 KiB whose bytes decode as UTF-8. Everything else (and every
symlink) is *binary*: it is never merged line by line.

Content the merge makes (a cleanly merged text, a text with conflict markers)
is given an id by :meth:`ContentSource.identify` (for a repository: the blob
id of the manifest the bytes will have once stored, computed by hashing only)
and kept in ``new_content`` until the merge is applied and stores it.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter

from vsync.model.folder_scan import MODE_LINK
from vsync.model.gitdb import blob_id
from vsync.model.ingest import Ingester
from vsync.model.manifest import Manifest
from vsync.model.materialize import manifest_chunks
from vsync.model.repository import Repository
from vsync.model.snapshot import Entry

TEXT_LIMIT = 16 * 1024 * 1024
SNIFF = 8 * 1024
MEMORY_CHUNK = 64  # MemoryContent's fixed "chunk" size for similarity
CACHE_TEXT = 256 * 1024  # texts up to this size are kept once read (rename checks reread)


def is_text(data: bytes) -> bool:
    """No NUL byte in the first 8 KiB, and valid UTF-8."""
    if b"\0" in data[:SNIFF]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_similarity(a: bytes, b: bytes) -> float:
    """Share of lines the two texts have in common (as multisets): 2*common/(na+nb)."""
    la, lb = a.splitlines(), b.splitlines()
    if not la and not lb:
        return 1.0
    common = sum((Counter(la) & Counter(lb)).values())
    return 2 * common / (len(la) + len(lb))


class ContentSource:
    """Content of entries, plus an overlay of content the merge itself made."""

    def __init__(self) -> None:
        self.new_content: dict[bytes, bytes] = {}
        self._text: dict[bytes, bytes | None] = {}

    # -- to provide ------------------------------------------------------------

    def _raw(self, entry: Entry, limit: int | None) -> bytes | None:
        """All bytes (None if longer than ``limit``); a symlink's target."""
        raise NotImplementedError

    def size(self, entry: Entry) -> int:
        raise NotImplementedError

    def chunk_ids(self, entry: Entry) -> list[bytes]:
        raise NotImplementedError

    def _make_id(self, data: bytes, mode: int) -> bytes:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------

    def read(self, entry: Entry) -> bytes:
        """The whole content (symlink: its target). Callers keep it small."""
        if entry[1] in self.new_content:
            return self.new_content[entry[1]]
        data = self._raw(entry, None)
        assert data is not None
        return data

    def text(self, entry: Entry) -> bytes | None:
        """The bytes of a text file; None for binaries, big files and symlinks."""
        mode, oid = entry
        if mode == MODE_LINK:
            return None
        if oid in self.new_content:
            data = self.new_content[oid]
            return data if is_text(data) else None
        if oid in self._text:
            return self._text[oid]
        raw = self._raw(entry, TEXT_LIMIT)
        text = raw if raw is not None and is_text(raw) else None
        if text is None or len(text) <= CACHE_TEXT:  # memory stays bounded by file count
            self._text[oid] = text
        return text

    def identify(self, data: bytes, mode: int) -> bytes:
        """The id ``data`` has once stored with ``mode``; remembered in ``new_content``."""
        oid = self._make_id(data, mode)
        self.new_content[oid] = data
        return oid


class MemoryContent(ContentSource):
    """Content held in a dict ``{id: bytes}`` (ids are whatever the caller chose)."""

    def __init__(self, blobs: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.blobs = dict(blobs or {})

    @staticmethod
    def id_of(data: bytes) -> bytes:
        return hashlib.sha1(b"mem\0" + data).hexdigest().encode()

    def add(self, data: bytes) -> bytes:
        oid = self.id_of(data)
        self.blobs[oid] = data
        return oid

    def _bytes(self, oid: bytes) -> bytes:
        if oid in self.new_content:
            return self.new_content[oid]
        return self.blobs[oid]

    def _raw(self, entry: Entry, limit: int | None) -> bytes | None:
        data = self._bytes(entry[1])
        return None if limit is not None and len(data) > limit else data

    def size(self, entry: Entry) -> int:
        return len(self._bytes(entry[1]))

    def chunk_ids(self, entry: Entry) -> list[bytes]:
        data = self._bytes(entry[1])
        return [
            hashlib.sha1(data[i : i + MEMORY_CHUNK]).digest()
            for i in range(0, len(data), MEMORY_CHUNK)
        ]

    def _make_id(self, data: bytes, mode: int) -> bytes:
        return self.id_of(data)


class RepoContent(ContentSource):
    """Content of a repository: manifests from git, chunks verified from the chunk store."""

    def __init__(self, repo: Repository, ingester: Ingester) -> None:
        super().__init__()
        self.repo = repo
        self.db = repo.gitdb
        self.ingester = ingester
        self._manifests: dict[bytes, Manifest] = {}

    def manifest(self, oid: bytes) -> Manifest:
        m = self._manifests.get(oid)
        if m is None:
            m = self.db.manifest(oid)
            self._manifests[oid] = m
        return m

    def _raw(self, entry: Entry, limit: int | None) -> bytes | None:
        mode, oid = entry
        if oid in self.new_content:
            return self.new_content[oid]
        if mode == MODE_LINK:
            return self.db.link_target(oid)
        m = self.manifest(oid)
        if limit is not None and m.size > limit:
            return None
        buf = bytearray()
        for chunk in manifest_chunks(self.repo.chunks, m):
            buf += chunk
            if limit is not None and len(buf) >= SNIFF and b"\0" in buf[:SNIFF]:
                return bytes(buf)  # binary: the caller's is_text() says so
        return bytes(buf)

    def size(self, entry: Entry) -> int:
        mode, oid = entry
        if oid in self.new_content:
            return len(self.new_content[oid])
        if mode == MODE_LINK:
            return len(self.db.link_target(oid))
        return self.manifest(oid).size

    def chunk_ids(self, entry: Entry) -> list[bytes]:
        mode, oid = entry
        if mode == MODE_LINK or oid in self.new_content:
            return []
        return [cid for cid, _n in self.manifest(oid).chunks]

    def _make_id(self, data: bytes, mode: int) -> bytes:
        if mode == MODE_LINK:
            return blob_id(data)
        manifest = self.ingester.ingest(io.BytesIO(data), None)
        return blob_id(manifest.to_bytes())
