"""Reading git objects: typed, verified, and every failure on damaged data made one error.

Every object read here is checked against its id (the SHA-1 of its type,
size and bytes is recomputed), so damage that zlib lets through is caught
too. An object that history needs and that is missing, unreadable,
malformed or of the wrong type raises :class:`~vsync.errors.GitObjectDamaged`
(exit 3) naming it.
"""

from __future__ import annotations

from collections.abc import Callable

from dulwich.diff_tree import tree_changes
from dulwich.object_store import DiskObjectStore
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID, ShaFile, TreeEntry, parse_tree
from dulwich.objects import Tag as DulwichTag

from vsync.errors import FSCK_HINT, DamagedRepository, GitObjectDamaged
from vsync.model.gitdb.encode import object_id
from vsync.model.gitdb.guard import describe, drop_traceback, file_damage, guarded
from vsync.model.gitdb.pack import Presence
from vsync.model.gitdb.types import (
    BLOB,
    COMMIT,
    TAG,
    TREE,
    TYPE_NAMES,
    Blob,
    ChangeSide,
    Commit,
    GitObject,
    RawObject,
    Tag,
    Tree,
    TreeChange,
    TreeItem,
    is_object_id,
)
from vsync.model.manifest import Manifest

SHA_LEN = 20
_STORE = "the git object store (.vsync/git/objects)"


def _malformed(oid: bytes, what: str) -> Callable[[str], DamagedRepository]:
    def make(problem: str) -> DamagedRepository:
        detail = problem.removeprefix("cannot be read (").removesuffix(")")
        return GitObjectDamaged(oid, what, f"is malformed ({detail})")

    return make


def _hex(value: bytes, oid: bytes, what: str, field: str) -> bytes:
    if not is_object_id(value):
        raise GitObjectDamaged(oid, what, f"is malformed (its {field} is not an object id)")
    return value


class ObjectReader:
    """Typed, verified reads of the objects of one dulwich object store."""

    def __init__(self, store: DiskObjectStore) -> None:
        self._store = store

    # -- raw access ----------------------------------------------------------------

    def _raw(self, oid: bytes, what: str) -> tuple[int, bytes] | None:
        """The object's type and body; None if it is not stored. Verified against its id."""
        if not is_object_id(oid):
            raise GitObjectDamaged(oid, what, "is named by something that is not an object id")
        problem = ""
        try:
            type_num, raw = self._store.get_raw(ObjectID(oid))
        except KeyError as exc:
            drop_traceback(exc)
            return None
        except MemoryError:
            raise  # not damage: the caller says the machine ran short
        except Exception as exc:  # the conversion layer: a failed read of stored data is damage
            problem = f"cannot be read ({describe(exc)})"
            drop_traceback(exc)
        if not problem:
            if type_num not in TYPE_NAMES:
                problem = f"has an unknown type ({type_num})"
            elif object_id(type_num, raw) != oid:
                problem = "does not match its id (its bytes are damaged)"
            else:
                return type_num, bytes(raw)
        raise GitObjectDamaged(oid, what, problem)

    def _typed(self, oid: bytes, type_num: int) -> bytes:
        what = TYPE_NAMES[type_num]
        found = self._raw(oid, what)
        if found is None:
            raise GitObjectDamaged(oid, what, "is missing")
        if found[0] != type_num:
            raise GitObjectDamaged(oid, what, f"is a {TYPE_NAMES[found[0]]}, not a {what}")
        return found[1]

    # -- presence --------------------------------------------------------------------

    def has(self, oid: bytes) -> bool:
        """Whether ``oid`` is stored (not read or verified)."""
        if not is_object_id(oid):
            return False
        return guarded(lambda: ObjectID(oid) in self._store, file_damage(_STORE))

    def __contains__(self, oid: bytes) -> bool:
        return self.has(oid)

    def presence(self, expected: int) -> Presence:
        """A fast membership test for about ``expected`` questions."""
        return Presence(self._store, expected)

    def object_ids(self) -> set[bytes]:
        """Every stored object id (packed and loose)."""
        return guarded(lambda: set(self._store), file_damage(_STORE))

    def ids_with_prefix(self, prefix: bytes) -> list[bytes]:
        """Stored ids that start with the hex ``prefix``."""
        return guarded(lambda: sorted(self._store.iter_prefix(prefix)), file_damage(_STORE))

    # -- typed reads ---------------------------------------------------------------------

    def find(self, oid: bytes) -> GitObject | None:
        """The object ``oid`` of whatever type, or None if it is not stored."""
        found = self._raw(oid, "object")
        if found is None:
            return None
        return self._parse(oid, *found)

    def read(self, oid: bytes) -> GitObject:
        """The object ``oid`` of whatever type; GitObjectDamaged if it is not stored."""
        obj = self.find(oid)
        if obj is None:
            raise GitObjectDamaged(oid, "object", "is missing")
        return obj

    def commit(self, oid: bytes) -> Commit:
        return self._commit(oid, self._typed(oid, COMMIT))

    def tree(self, oid: bytes) -> Tree:
        return self._tree(oid, self._typed(oid, TREE))

    def blob(self, oid: bytes) -> bytes:
        """A blob's bytes: a manifest, or a symlink's target."""
        return self._typed(oid, BLOB)

    def link_target(self, oid: bytes) -> bytes:
        return self._typed(oid, BLOB)

    def manifest(self, oid: bytes, what: str = "") -> Manifest:
        """The manifest stored as blob ``oid``; ``what`` names it in errors."""
        return Manifest.from_bytes(self._typed(oid, BLOB), what or f"manifest {oid.decode()}")

    def parse_verified(self, obj: RawObject) -> GitObject:
        """``obj`` (from anywhere: another copy, a peer) parsed once its bytes are
        checked against its id; GitObjectDamaged if they do not match."""
        if obj.type_num not in TYPE_NAMES:
            raise GitObjectDamaged(obj.id, "object", f"has an unknown type ({obj.type_num})")
        if not is_object_id(obj.id) or object_id(obj.type_num, obj.raw) != obj.id:
            problem = "does not match its id (its bytes are damaged)"
            raise GitObjectDamaged(obj.id, "object", problem)
        return self._parse(obj.id, obj.type_num, obj.raw)

    def _parse(self, oid: bytes, type_num: int, raw: bytes) -> GitObject:
        if type_num == COMMIT:
            return self._commit(oid, raw)
        if type_num == TREE:
            return self._tree(oid, raw)
        if type_num == TAG:
            return self._tag(oid, raw)
        return Blob(oid, raw)

    def _commit(self, oid: bytes, raw: bytes) -> Commit:
        def parse() -> DulwichCommit:
            obj = DulwichCommit.from_raw_string(COMMIT, raw)
            assert isinstance(obj, DulwichCommit)
            return obj

        c = guarded(parse, _malformed(oid, "commit"))
        return Commit(
            id=oid,
            tree=_hex(c.tree, oid, "commit", "tree"),
            parents=tuple(_hex(p, oid, "commit", "parent") for p in c.parents),
            author=c.author,
            committer=c.committer,
            author_time=c.author_time,
            author_timezone=c.author_timezone,
            commit_time=c.commit_time,
            commit_timezone=c.commit_timezone,
            encoding=c.encoding,
            message=c.message or b"",
            headers=tuple(c._extra),
        )

    def _tree(self, oid: bytes, raw: bytes) -> Tree:
        def parse() -> tuple[TreeItem, ...]:
            return tuple(parse_tree(raw, SHA_LEN))

        return Tree(oid, guarded(parse, _malformed(oid, "tree")))

    def _tag(self, oid: bytes, raw: bytes) -> Tag:
        def target() -> bytes:
            obj = ShaFile.from_raw_string(TAG, raw)
            assert isinstance(obj, DulwichTag)
            return obj.object[1]

        return Tag(oid, _hex(guarded(target, _malformed(oid, "tag")), oid, "tag", "object"))

    # -- comparing trees -------------------------------------------------------------------

    def tree_changes(self, old_tree: bytes | None, new_tree: bytes) -> list[TreeChange]:
        """Every file-level difference from ``old_tree`` (None: empty) to ``new_tree``.

        A path whose type changed (file <-> symlink) is one ``modify``; folders
        are walked, not reported.
        """
        for tid in (old_tree, new_tree):
            if tid is not None:
                self.tree(tid)  # a missing or damaged root is named precisely
        label = f"tree {(old_tree or b'(none)').decode()}..{new_tree.decode()}"
        old_id = None if old_tree is None else ObjectID(old_tree)

        def diff() -> list[TreeChange]:
            return [
                TreeChange(
                    change.type,
                    None if change.old is None else _side(change.old),
                    None if change.new is None else _side(change.new),
                )
                for change in tree_changes(
                    self._store, old_id, ObjectID(new_tree), change_type_same=True
                )
            ]

        def damage(problem: str) -> DamagedRepository:
            detail = problem.removeprefix("cannot be read (").removesuffix(")")
            return DamagedRepository(f"git {label} cannot be compared ({detail}); {FSCK_HINT}")

        return guarded(diff, damage)


def _side(entry: TreeEntry) -> ChangeSide | None:
    if entry.path is None or entry.mode is None or entry.sha is None:
        return None
    return ChangeSide(entry.path, entry.mode, entry.sha)
