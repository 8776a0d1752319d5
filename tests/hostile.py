"""Hostile git objects and packs, shared by tests/evil_serve.py and tests/evil_push.py.

Each *object case* builds, on top of a commit the receiver has (``head``), a
commit that breaks one rule of "What a receiver verifies" (docs/protocol.md),
and says which objects a hostile sender puts in its pack. Everything is
deterministic (fixed times, fixed bytes), so two processes building the same
case from the same ``head`` name the same commit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import Blob, Commit, ShaFile, Tree, hex_to_sha
from dulwich.pack import UnpackedObject, full_unpacked_object, write_pack_data
from dulwich.repo import Repo as DulwichRepo

from vsync.model.manifest import Manifest
from vsync.model.repository import Repository
from vsync.sync import protocol as p
from vsync.sync.protocol import Connection

MODE_FILE = 0o100644
MODE_TREE = 0o040000
GHOST_CHUNK = bytes(range(32))  # a chunk id no repository holds


@dataclass
class Evil:
    tip: bytes  # what the hostile side advertises (server) or pushes (client)
    send: list[ShaFile]  # the objects it puts in its pack, whole
    deltas: list[UnpackedObject] = field(default_factory=list)  # and as deltas

    def records(self) -> list[UnpackedObject]:
        return whole(self.send) + self.deltas


_stores: dict[str, DulwichRepo] = {}


def store_of(repo: Repository) -> object:
    """dulwich's object store of ``repo``'s git repository, to read and plant objects
    with (a hostile peer is a short-lived process: the Repo stays open until it exits)."""
    path = str(repo.control / "git")
    if path not in _stores:
        _stores[path] = DulwichRepo(path)
    return _stores[path].object_store


def raw_tree(entries: Iterable[tuple[int, bytes, bytes]]) -> Tree:
    """A tree with exactly these (mode, name, hex id) entries, unchecked and unsorted."""
    raw = b"".join(b"%o %s\0%s" % (mode, name, hex_to_sha(sha)) for mode, name, sha in entries)
    return Tree.from_raw_string(Tree.type_num, raw)


def make_commit(tree: bytes, parents: list[bytes], message: bytes = b"evil\n") -> Commit:
    c = Commit()
    c.tree = tree
    c.parents = parents
    c.author = c.committer = b"Mallory <m@example.com>"
    c.author_time = c.commit_time = 1_700_000_000
    c.author_timezone = c.commit_timezone = 0
    c.message = message
    return c


def blob(data: bytes) -> Blob:
    return Blob.from_string(data)


def ghost_manifest() -> Blob:
    """A valid manifest naming a chunk that exists nowhere."""
    return blob(Manifest(5, [(GHOST_CHUNK, 5)]).to_bytes())


def head_entries(store: object, head: bytes) -> list[tuple[int, bytes, bytes]]:
    commit = store[head]  # type: ignore[index]
    tree = store[commit.tree]  # type: ignore[index]
    return [(e.mode, e.path, e.sha) for e in tree.iteritems()]


def _a_manifest(entries: list[tuple[int, bytes, bytes]]) -> bytes:
    return next(sha for mode, _n, sha in entries if mode == MODE_FILE)


def _with_entry(store: object, head: bytes, mode: int, name: bytes, sha: bytes) -> Evil:
    entries = head_entries(store, head)
    tree = raw_tree([*entries, (mode, name, sha)])
    commit = make_commit(tree.id, [head])
    return Evil(commit.id, [tree, commit])


def hidden_commit(store: object, head: bytes) -> tuple[Commit, list[ShaFile]]:
    """The commit of issue 10: case twins, a blob that is no manifest, a missing chunk."""
    entries = head_entries(store, head)
    manifest = _a_manifest(entries)
    name = next(n for mode, n, sha in entries if sha == manifest)
    hello, ghost = blob(b"hello, not a manifest\n"), ghost_manifest()
    tree = raw_tree(
        [
            *entries,
            (MODE_FILE, name.upper(), manifest),
            (MODE_FILE, b"hello.txt", hello.id),
            (MODE_FILE, b"ghost.bin", ghost.id),
        ]
    )
    commit = make_commit(tree.id, [head], b"hidden\n")
    return commit, [hello, ghost, tree, commit]


OBJECT_CASES = [
    "name-empty",
    "name-dot",
    "name-dotdot",
    "name-slash",
    "name-backslash",
    "name-not-utf8",
    "name-not-nfc",
    "name-vsync",
    "case-twins",
    "mode-unknown",
    "blob-not-manifest",
    "missing-tree",
    "missing-blob",
    "missing-parent",
    "tip-is-tree",
    "tip-is-known-blob",
    "tip-is-new-blob",
    "hidden",
    "missing-base",
]

BAD_NAMES = {
    "name-empty": b"",
    "name-dot": b".",
    "name-dotdot": b"..",
    "name-slash": b"a/b",
    "name-backslash": b"a\\b",
    "name-not-utf8": b"caf\xe9.txt",
    "name-not-nfc": "cafe\u0301.txt".encode(),
    "name-vsync": b".VSync",
}


def evil_objects(store: object, head: bytes, case: str) -> Evil:
    """What a hostile sender advertises or pushes for ``case``, on top of ``head``."""
    entries = head_entries(store, head)
    manifest = _a_manifest(entries)
    if case in BAD_NAMES:
        return _with_entry(store, head, MODE_FILE, BAD_NAMES[case], manifest)
    if case == "case-twins":
        name = next(n for mode, n, sha in entries if sha == manifest)
        return _with_entry(store, head, MODE_FILE, name.swapcase(), manifest)
    if case == "mode-unknown":
        return _with_entry(store, head, 0o160000, b"submodule", head)
    if case == "blob-not-manifest":
        hello = blob(b"hello, not a manifest\n")
        evil = _with_entry(store, head, MODE_FILE, b"hello.txt", hello.id)
        return Evil(evil.tip, [hello, *evil.send])
    if case == "missing-tree":
        tree = raw_tree([*entries, (MODE_FILE, b"more.txt", manifest)])
        commit = make_commit(tree.id, [head])
        return Evil(commit.id, [commit])
    if case == "missing-blob":
        ghost = ghost_manifest()
        return _with_entry(store, head, MODE_FILE, b"ghost.bin", ghost.id)
    if case == "missing-parent":
        commit = make_commit(store[head].tree, [head, b"1" * 40])  # type: ignore[index]
        return Evil(commit.id, [commit])
    if case in ("tip-is-tree", "tip-is-known-blob"):
        # an object the receiver has: the tree (or a manifest) of head's parent, else of head
        commit = store[head]  # type: ignore[index]
        known = store[commit.parents[0]] if commit.parents else commit  # type: ignore[index]
        if case == "tip-is-tree":
            return Evil(known.tree, [])
        return Evil(_a_manifest(head_entries(store, known.id)), [])
    if case == "tip-is-new-blob":
        hello = blob(b"hello, not a commit\n")
        return Evil(hello.id, [hello])
    if case == "hidden":
        commit, objects = hidden_commit(store, head)
        return Evil(commit.id, objects)
    if case == "hidden-unsent":
        return Evil(hidden_commit(store, head)[0].id, [])
    if case == "missing-base":
        # a new manifest sent as a REF_DELTA against one the receiver does not have
        base = blob(Manifest(5 * 20, [(bytes([i]) * 32, 5) for i in range(20)]).to_bytes())
        target = blob(Manifest(5 * 20, [(bytes([i + 1]) * 32, 5) for i in range(20)]).to_bytes())
        evil = _with_entry(store, head, MODE_FILE, b"delta.bin", target.id)
        return Evil(evil.tip, evil.send, [ref_delta(target, base.id, base.as_raw_string())])
    raise ValueError(case)


# -- packs ---------------------------------------------------------------------------


def pack_bytes(records: list[UnpackedObject]) -> bytes:
    out = io.BytesIO()
    write_pack_data(out.write, iter(records), DEFAULT_OBJECT_FORMAT, num_records=len(records))
    return out.getvalue()


def whole(objects: Iterable[ShaFile]) -> list[UnpackedObject]:
    return [full_unpacked_object(o) for o in objects]


def ref_delta(target: ShaFile, base_id: bytes, base_raw: bytes) -> UnpackedObject:
    """``target`` as a REF_DELTA against ``base_id`` (whose bytes are ``base_raw``)."""
    from dulwich.pack import create_delta

    delta = b"".join(create_delta(base_raw, target.as_raw_string()))
    return UnpackedObject(
        target.type_num,
        sha=target.sha().digest(),
        delta_base=hex_to_sha(base_id),
        decomp_len=len(delta),
        decomp_chunks=[delta],
    )


def with_trailing_garbage(data: bytes) -> bytes:
    """The pack with bytes after its last object, its checksum made right again."""
    import hashlib

    body = data[:-20] + b"\x00" * 16
    return body + hashlib.sha1(body).digest()


def send_pack_bytes(
    conn: Connection, data: bytes, objects: int, nbytes: int | None = None, end: object = None
) -> None:
    for i in range(0, len(data), 1 << 20):
        conn.send(p.PACK_DATA, data[i : i + (1 << 20)])
    info = (
        end
        if end is not None
        else {"objects": objects, "bytes": len(data) if nbytes is None else nbytes}
    )
    conn.send(p.PACK_END, json.dumps(info).encode())
    conn.flush()


PACK_CASES = [
    "count-zero",
    "count-high",
    "bytes-wrong",
    "pack-end-garbage",
    "trailing-garbage",
    "bad-checksum",
    "extra-object",
]


def tampered_pack(
    case: str, records: list[UnpackedObject], store: object, head: bytes
) -> tuple[bytes, int, object]:
    """(pack bytes, PACK_END objects, PACK_END payload or None) for a pack-level ``case``.

    ``records`` is the honest pack; ``head`` a commit the receiver has.
    """
    n = len(records)
    if case == "extra-object":
        _commit, hidden = hidden_commit(store, head)
        records = records + whole(hidden)
        return pack_bytes(records), len(records), None
    data = pack_bytes(records)
    if case == "count-zero":
        return data, 0, None
    if case == "count-high":
        return data, n + 1, None
    if case == "bytes-wrong":
        return data, n, {"objects": n, "bytes": len(data) + 1}
    if case == "pack-end-garbage":
        return data, n, {"objects": "many", "bytes": len(data)}
    if case == "trailing-garbage":
        return with_trailing_garbage(data), n, None
    if case == "bad-checksum":  # every object intact, only the trailing SHA-1 wrong
        return data[:-1] + bytes([data[-1] ^ 0x01]), n, None
    raise ValueError(case)
