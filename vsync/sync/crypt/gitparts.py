"""The git packs of one push to an object-store remote (docs/format.md, "Git pack").

A push's new git objects go as several git packs (``git/<hex>``) of at most
:data:`GIT_PART_BYTES` each, not as one object of up to 1 GiB: object stores
have no resumable upload, so a push killed after some of them were stored finds
them on its re-run (their names are the keyed ids of their bytes, and the bytes
are the same every time: :func:`vsync.model.gitdb.packgen.pack_parts`) and sends
only the rest. Each is a self-contained git pack; the branch record names every
one of them with the push's commit, oldest first. A fetch joins the packs of one
push back into one git pack (:func:`join_parts`) and validates it as one, as it
did when a push was one pack.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from vsync.store import faults
from vsync.sync.crypt.errors import RemoteTampered
from vsync.sync.crypt.remote import EncryptedRemote
from vsync.sync.crypt.seal import KIND_GIT

GIT_PART_BYTES = 16 * 1024 * 1024
"""The longest git pack a push writes (one object longer than that goes alone)."""
PART_ENV = "VSYNC_TEST_GIT_PACK_BYTES"  # tests only: a smaller cut, to make several
MAX_GIT_PACK = 1 << 30
"""The longest a git pack object may be, and all the git packs of one push together."""
PACK_HEAD = struct.Struct(">4sII")  # "PACK", version, object count
SHA1 = 20
_READ = 1 << 20


def part_bytes() -> int:
    """:data:`GIT_PART_BYTES`, or what the tests set in ``VSYNC_TEST_GIT_PACK_BYTES``."""
    value = os.environ.get(PART_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else GIT_PART_BYTES


def git_name(er: EncryptedRemote, data: bytes) -> str:
    return er.sealer.name_id(b"git-pack\0", data)


def store_parts(
    er: EncryptedRemote, parts: Iterable[bytes], renew: Callable[[], None]
) -> tuple[list[str], int]:
    """Write each of ``parts`` as ``git/<its name>`` unless the remote holds it
    already (a killed push's re-run: listed once, under the push's shared lock, so
    no gc removes one meanwhile); their names in order and their total length.

    As many are written at once as the store takes (``parallel_writes``, as for
    chunk packs) while the next is made; while one is sealed, at most one fewer
    (at least one) are being written, so memory stays bounded as for chunk
    packs. Every one is stored when this returns."""
    present = {name.split("/", 1)[1] for name in er.store.list("git/")}
    names: list[str] = []
    total = 0
    workers = max(1, int(getattr(er.store.inner, "parallel_writes", 1)))
    while_sealing = max(1, workers - 1)  # uploads that may run while a part is sealed
    uploads: deque[Future[bool]] = deque()

    def wait_first() -> None:
        uploads.popleft().result()
        faults.point("encrypted-push-git-pack-stored")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsync-git") as pool:
        try:
            for data in parts:
                name = git_name(er, data)
                names.append(name)
                total += len(data)
                if name in present:
                    continue
                present.add(name)
                while len(uploads) > while_sealing:
                    wait_first()
                sealed = er.sealer.seal(KIND_GIT, f"git/{name}", data)
                renew()
                while len(uploads) >= workers:
                    wait_first()
                uploads.append(pool.submit(er.store.write_if_absent, f"git/{name}", sealed))
            while uploads:
                wait_first()
        finally:
            for upload in uploads:
                upload.cancel()
    return names, total


def open_git_pack(er: EncryptedRemote, name: str) -> bytes:
    """The git pack ``git/<name>``, opened and checked against its name."""
    where = f"git/{name}"
    data = er.store.read(where, 0, MAX_GIT_PACK + 1)
    if len(data) > MAX_GIT_PACK:
        raise er.sealer.damaged(where, "too long")
    payload = er.sealer.open(KIND_GIT, where, data)
    if git_name(er, payload) != name:
        raise er.sealer.damaged(where, "its name is not the id of its content")
    return payload


def pushes(git_packs: Iterable[tuple[str, bytes]]) -> Iterator[tuple[bytes, list[str]]]:
    """The branch record's git packs grouped by push: (its commit, its packs in
    order). A push's packs are adjacent and name the same commit; two pushes never
    name the same one (each moves the branch forward)."""
    tip: bytes | None = None
    names: list[str] = []
    for name, commit in git_packs:
        if names and commit != tip:
            assert tip is not None
            yield tip, names
            names = []
        tip = commit
        names.append(name)
    if names:
        assert tip is not None
        yield tip, names


def join_parts(er: EncryptedRemote, names: list[str], out: BinaryIO) -> int:
    """Write the git packs ``names`` to ``out`` (empty) as one git pack; its length.
    Each is opened (and checked against its name) in turn, so one is in memory at a
    time (:func:`join_packs`)."""
    parts = ((f"git/{name}", open_git_pack(er, name)) for name in names)
    return join_packs(parts, out, er.sealer.damaged)


def join_packs(
    parts: Iterable[tuple[str, bytes]],
    out: BinaryIO,
    damaged: Callable[[str, str], RemoteTampered] = RemoteTampered,
) -> int:
    """Write the git packs ``parts`` ((where, bytes), read lazily) to ``out`` (empty)
    as one git pack; its length.

    Each must be a version 2 pack whose trailer is its SHA-1. Their entries go one
    after the other (an OFS_DELTA's distance is to an entry of its own pack, so it
    still holds), under one header counting them all, with the SHA-1 of the whole
    as its trailer. All together are at most :data:`MAX_GIT_PACK`.
    """
    out.write(bytes(PACK_HEAD.size))
    count = 0
    length = PACK_HEAD.size + SHA1
    for where, data in parts:
        if len(data) < PACK_HEAD.size + SHA1:
            raise damaged(where, "not a git pack")
        magic, version, objects = PACK_HEAD.unpack_from(data)
        if magic != b"PACK" or version != 2:
            raise damaged(where, "not a version 2 git pack")
        body = memoryview(data)[PACK_HEAD.size : len(data) - SHA1]
        if hashlib.sha1(memoryview(data)[: len(data) - SHA1]).digest() != data[-SHA1:]:
            raise damaged(where, "its git pack trailer is not its SHA-1")
        count += objects
        length += len(body)
        if length > MAX_GIT_PACK or count >= 1 << 32:
            raise damaged(where, "its push's git packs are too long together")
        out.write(body)
    out.seek(0)
    out.write(PACK_HEAD.pack(b"PACK", 2, count))
    out.seek(0)
    digest = hashlib.sha1()
    while block := out.read(_READ):
        digest.update(block)
    out.write(digest.digest())
    return length
