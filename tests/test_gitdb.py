"""The git database (vsync/model/gitdb): its fast encoders agree with dulwich and git,
its reads are typed and verified, and damage becomes one DamagedRepository.

dulwich is used here as the independent reference the encoders must match, and
git itself (``git verify-pack``, ``git fsck --strict``) judges the packs.
"""

from __future__ import annotations

import gc
import os
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.objects import Blob as DulwichBlob
from dulwich.objects import ObjectID
from dulwich.objects import Tree as DulwichTree
from dulwich.pack import Pack, pack_object_header
from hypothesis import given, settings
from hypothesis import strategies as st

from vsync.errors import DamagedRepository, GitObjectDamaged
from vsync.model.gitdb import (
    BLOB,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    Commit,
    GitDB,
    RawObject,
    ReflogEntry,
    TornReflogLine,
    Tree,
    blob_id,
    blob_object,
    build_tree,
    commit_object,
    tree_id_of,
)
from vsync.model.gitdb.pack import PackStream, _object_header, write_pack
from vsync.model.repository import BRANCH

# Names whose order in a tree is subtle: "a-b" < "a.b" < "a/" (the folder a) < "a0".
NAME = st.text(alphabet="ab0-._", min_size=1, max_size=4).filter(
    lambda n: n not in (".", "..") and not n.startswith(".git")
)
PATH = st.lists(NAME, min_size=1, max_size=3).map("/".join)
MODE = st.sampled_from([MODE_FILE, MODE_EXEC, MODE_LINK])


def _consistent(paths: list[str]) -> list[str]:
    """Drop paths that would be both a file and a folder (``a`` and ``a/b``)."""
    kept: list[str] = []
    for p in sorted(set(paths), key=lambda p: p.count("/")):
        parts = p.split("/")
        if any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            continue
        if any(k.startswith(p + "/") for k in kept):
            continue
        kept.append(p)
    return kept


Snapshot = dict[str, tuple[int, bytes]]  # path -> (mode, content)
SNAPSHOT = st.lists(st.tuples(PATH, MODE, st.binary(max_size=40)), max_size=25).map(
    lambda items: {
        p: (mode, data)
        for p, mode, data in items
        if p in set(_consistent([q for q, _m, _d in items]))
    }
)


def _flat(snapshot: Snapshot) -> dict[str, tuple[int, bytes]]:
    return {p: (mode, blob_id(data)) for p, (mode, data) in snapshot.items()}


def _dulwich_trees(flat: dict[str, tuple[int, bytes]]) -> tuple[bytes, dict[bytes, bytes]]:
    """The root id and every tree (id -> raw bytes), built with dulwich's Tree."""
    out: dict[bytes, bytes] = {}

    def build(entries: dict[str, tuple[int, bytes]]) -> bytes:
        tree = DulwichTree()
        folders: dict[str, dict[str, tuple[int, bytes]]] = {}
        for path, (mode, oid) in entries.items():
            head, sep, rest = path.partition("/")
            if sep:
                folders.setdefault(head, {})[rest] = (mode, oid)
            else:
                tree.add(head.encode(), mode, ObjectID(oid))
        for name, sub in folders.items():
            tree.add(name.encode(), MODE_TREE, ObjectID(build(sub)))
        out[tree.id] = tree.as_raw_string()
        return tree.id

    return build(flat), out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_blob_id_is_dulwichs(data: bytes) -> None:
    assert blob_id(data) == DulwichBlob.from_string(data).id
    obj = blob_object(data)
    assert (obj.type_num, obj.id, obj.raw) == (BLOB, blob_id(data), data)


@settings(max_examples=300, deadline=None)
@given(SNAPSHOT)
def test_build_tree_makes_dulwichs_trees_byte_for_byte(snapshot: Snapshot) -> None:
    flat = _flat(snapshot)
    root, trees = build_tree(flat)
    want_root, want = _dulwich_trees(flat)
    assert root == want_root == tree_id_of(flat)
    assert {t.id: t.raw for t in trees} == want


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2, 3, 4]), st.integers(min_value=0, max_value=1 << 40))
def test_pack_object_header_is_dulwichs(type_num: int, size: int) -> None:
    want = pack_object_header(type_num, None, size, DEFAULT_OBJECT_FORMAT)
    assert _object_header(type_num, size) == bytes(want)


RAW_OBJECTS = st.lists(
    st.one_of(
        st.binary(max_size=300).map(blob_object),
        # sizes whose pack headers take two, three and four bytes
        st.builds(
            lambda n, b: blob_object(bytes([b]) * n), st.integers(0, 300_000), st.integers(0, 255)
        ),
        SNAPSHOT.map(lambda snap: build_tree(_flat(snap))[1][-1]),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(RAW_OBJECTS)
def test_write_pack_is_read_back_by_dulwich_byte_for_byte(objects: list[RawObject]) -> None:
    """The one-pass pack and index: dulwich's own checks pass (pack and index
    checksums, every record's CRC), the file name is the pack's name, and every
    object reads back with its type and bytes; duplicates are stored once."""
    with tempfile.TemporaryDirectory() as tmp:
        base = write_pack(tmp, [*objects, *objects[:2]], fsync=False)
        if not objects:
            assert base is None and not os.listdir(tmp)
            return
        assert base is not None
        pack = Pack(base, object_format=DEFAULT_OBJECT_FORMAT)
        try:
            pack.check()
            assert base.endswith("pack-" + pack.name().decode())
            unique = {o.id: o for o in objects}
            assert len(pack) == len(unique)
            for oid, obj in unique.items():
                assert pack.get_raw(ObjectID(oid)) == (obj.type_num, obj.raw)
        finally:
            pack.close()


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=False
    )


@settings(max_examples=25, deadline=None)
@given(SNAPSHOT, st.sampled_from([0, 3600, -18000, 19800]))
def test_the_one_pass_pack_passes_git_verify_pack_and_fsck_strict(
    snapshot: Snapshot, timezone: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        git_dir = Path(tmp) / "git"
        GitDB.init(git_dir, BRANCH)
        db = GitDB.open(git_dir)
        try:
            flat = _flat(snapshot)
            root, trees = build_tree(flat)
            commit = commit_object(
                tree=root,
                parents=[],
                author=b"A U Thor <author@example.com>",
                time=1_700_000_000,
                timezone=timezone,
                message=b"snapshot\n",
                headers=[(b"vsync-host", b"laptop")],
            )
            objects = [blob_object(data) for _mode, data in snapshot.values()]
            db.add([*objects, *trees, commit])
            assert db.swap_ref(BRANCH, None, commit.id, committer=b"A <a@e>", message=b"t")
            for obj in [*objects, *trees, commit]:  # read back, verified, as stored
                found = db.read(obj.id)
                if obj.type_num == BLOB:
                    assert db.blob(obj.id) == obj.raw
                else:
                    assert isinstance(found, (Tree, Commit))
        finally:
            db.close()
        (idx,) = (git_dir / "objects" / "pack").glob("*.idx")
        verify = _git(git_dir, "verify-pack", "-v", str(idx))
        assert verify.returncode == 0, verify.stderr
        fsck = _git(git_dir, "fsck", "--strict", "--no-dangling")
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@settings(max_examples=30, deadline=None)
@given(RAW_OBJECTS, st.integers(1, 4))
def test_a_pack_stream_stores_every_object_in_bounded_packs_git_verifies(
    objects: list[RawObject], per_pack: int
) -> None:
    """PackStream: nothing is readable before install (temporary files only, each a
    ``.pack`` without ``.idx``); after it, packs of at most ``per_pack`` objects that
    dulwich and ``git verify-pack`` accept hold every object; discard leaves nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        stream = PackStream(tmp, per_pack)
        for obj in objects:
            stream.add(obj)
        assert not [n for n in os.listdir(tmp) if n.endswith(".idx")]
        bases = stream.install(fsync=False)
        unique = len({o.id for o in objects})
        assert (unique + per_pack - 1) // per_pack <= len(bases)
        assert len(bases) <= (len(objects) + per_pack - 1) // per_pack
        assert sorted(os.listdir(tmp)) == sorted(
            f"{os.path.basename(b)}{s}" for b in set(bases) for s in (".idx", ".pack")
        )
        found: dict[bytes, tuple[int, bytes]] = {}
        for base in bases:
            pack = Pack(base, object_format=DEFAULT_OBJECT_FORMAT)
            try:
                pack.check()
                assert len(pack) <= per_pack
                for oid in pack:
                    found[bytes(oid)] = pack.get_raw(oid)
            finally:
                pack.close()
            verify = subprocess.run(
                ["git", "verify-pack", base + ".idx"], capture_output=True, text=True
            )
            assert verify.returncode == 0, verify.stderr
        assert found == {o.id: (o.type_num, o.raw) for o in objects}
        left = PackStream(tmp, per_pack)
        for obj in objects:
            left.add(obj)
        left.discard()
        assert sorted(os.listdir(tmp)) == sorted(
            f"{os.path.basename(b)}{s}" for b in set(bases) for s in (".idx", ".pack")
        )


# -- typed reads and refs ---------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[GitDB]:
    git_dir = tmp_path / "git"
    GitDB.init(git_dir, BRANCH)
    opened = GitDB.open(git_dir)
    yield opened
    opened.close()


def _commit_on(db: GitDB, files: dict[str, bytes], parents: list[bytes]) -> RawObject:
    blobs = [blob_object(data) for data in files.values()]
    root, trees = build_tree({p: (MODE_FILE, b.id) for p, b in zip(files, blobs, strict=True)})
    c = commit_object(
        tree=root, parents=parents, author=b"T <t@e>", time=1, timezone=0, message=b"m\n"
    )
    db.add([*blobs, *trees, c])
    return c


def test_reads_are_typed_and_the_wrong_type_is_damage(db: GitDB) -> None:
    c = _commit_on(db, {"a/b.txt": b"x"}, [])
    commit = db.commit(c.id)
    assert commit.parents == () and commit.message_text() == "m\n"
    tree = db.tree(commit.tree)
    item = tree.get(b"a")
    assert item is not None and item[1] == MODE_TREE
    with pytest.raises(GitObjectDamaged, match="is a tree, not a commit"):
        db.commit(commit.tree)
    missing = b"1" * 40
    assert db.find(missing) is None and not db.has(missing)
    with pytest.raises(GitObjectDamaged, match=f"git commit {missing.decode()} is missing"):
        db.commit(missing)


def test_a_ref_moves_only_by_compare_and_swap_onto_a_stored_commit(db: GitDB) -> None:
    first = _commit_on(db, {"f": b"1"}, [])
    second = _commit_on(db, {"f": b"2"}, [first.id])
    who = {"committer": b"T <t@e>", "message": b"test"}
    assert db.swap_ref(BRANCH, None, first.id, **who)
    assert not db.swap_ref(BRANCH, None, second.id, **who)  # it exists already
    assert not db.swap_ref(BRANCH, second.id, first.id, **who)  # not where it was
    with pytest.raises(GitObjectDamaged, match="is missing"):
        db.swap_ref(BRANCH, first.id, b"2" * 40, **who)
    assert db.ref(BRANCH) == first.id
    assert db.swap_ref(BRANCH, first.id, second.id, **who)
    log = [e for e in db.reflog(BRANCH) if isinstance(e, ReflogEntry)]
    assert [(e.old, e.new) for e in log] == [(None, first.id), (first.id, second.id)]
    (db.path / "refs/heads/main").write_bytes(b"not an id\n")
    with pytest.raises(DamagedRepository, match="refs/heads/main is damaged"):
        db.ref(BRANCH)


def test_a_torn_reflog_line_costs_only_itself(db: GitDB) -> None:
    first = _commit_on(db, {"f": b"1"}, [])
    assert db.swap_ref(BRANCH, None, first.id, committer=b"T <t@e>", message=b"one")
    with open(db.path / "logs/refs/heads/main", "ab") as log:  # a crash mid-append
        log.write(b"0" * 40 + b" " + first.id + b" T <t@e> 17")
    *good, torn = db.reflog(BRANCH)
    assert [type(e) for e in good] == [ReflogEntry]
    assert torn == TornReflogLine((first.id,))


# -- damage -------------------------------------------------------------------------------------


def test_a_damaged_pack_is_one_error_and_closing_after_it_is_safe(tmp_path: Path) -> None:
    git_dir = tmp_path / "git"
    GitDB.init(git_dir, BRANCH)
    db = GitDB.open(git_dir)
    c = _commit_on(db, {f"f{i}": os.urandom(200) for i in range(10)}, [])
    db.close()
    (pack,) = (git_dir / "objects" / "pack").glob("*.pack")
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    for i in range(12, len(data) - 20):
        data[i] ^= 0x5A
    pack.write_bytes(bytes(data))
    gc.disable()  # the pack's mapping must be freed without the cycle collector's help
    try:
        db = GitDB.open(git_dir)
        with pytest.raises(GitObjectDamaged) as caught:
            db.commit(c.id)
        assert caught.value.oid == c.id and "cannot be read (zlib.error" in caught.value.problem
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        assert str(caught.value).endswith("; run 'vsync fsck'")
        assert str(pack) in _mapped()
        # While a frame of the zlib error's traceback held a view into the mapping,
        # closing raised BufferError and the mapping stayed.
        db.close()
        assert str(pack) not in _mapped()
        db.close()
    finally:
        gc.enable()


def _mapped() -> str:
    return Path("/proc/self/maps").read_text()


def test_an_object_whose_bytes_do_not_match_its_id_is_damage(db: GitDB) -> None:
    """zlib's own checksum passes, the bytes are another object's: only the id tells."""
    c = _commit_on(db, {"f": b"1"}, [])
    other = commit_object(
        tree=db.commit(c.id).tree, parents=[], author=b"X <x@e>", time=2, timezone=0, message=b"x"
    )
    fake = b"a" * 40  # stored under an id that is not the hash of its bytes
    path = db.path / "objects" / fake[:2].decode() / fake[2:].decode()
    path.parent.mkdir()
    path.write_bytes(zlib.compress(b"commit %d\0" % len(other.raw) + other.raw))
    with pytest.raises(GitObjectDamaged, match="does not match its id"):
        db.commit(fake)
