"""The git database of one repository: objects, refs, reflogs, and its upkeep.

:class:`GitDB` extends :class:`~vsync.model.gitdb.reader.ObjectReader`
(typed, verified object reads) with what needs the whole git repository:

- refs: :meth:`GitDB.ref` reads one (a value that is not an object id is
  damage), :meth:`GitDB.swap_ref` moves one by compare-and-swap, writing a
  reflog line, and only ever onto a commit that is stored and readable;
- reflogs, line by line, so a torn line (a crash mid-append) costs only itself;
- adding objects (:meth:`GitDB.add`, one new pack per call);
- merge bases (``dulwich.graph``);
- upkeep for fsck and gc: pack checksums, unfinished packs, stale lock
  files, repacking.

Reads turn damage into DamagedRepository (exit 3); writes let OSError through
(disk full is exit 1, not damage). :meth:`GitDB.close` never raises.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.config import ConfigFile
from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.graph import find_merge_base
from dulwich.objects import ObjectID
from dulwich.pack import Pack
from dulwich.reflog import iter_reflogs, parse_reflog_line
from dulwich.refs import Ref
from dulwich.repo import Repo

from vsync.errors import FSCK_HINT, DamagedRepository, VsyncError
from vsync.model.gitdb.encode import object_id
from vsync.model.gitdb.guard import describe, drop_traceback, file_damage, guarded
from vsync.model.gitdb.lockfiles import GUARD, break_stale, write_locked
from vsync.model.gitdb.lockfiles import guard as lockfile_guard
from vsync.model.gitdb.pack import PackStream, write_pack
from vsync.model.gitdb.reader import ObjectReader
from vsync.model.gitdb.types import (
    TYPE_NAMES,
    ZERO_ID,
    RawObject,
    ReflogEntry,
    ReflogLine,
    TornReflogLine,
    is_object_id,
)
from vsync.model.lock import RepoLock
from vsync.store import faults
from vsync.store.chunkstore import fsync_dir

_SHA = re.compile(rb"\b[0-9a-f]{40}\b")
# core.fsync (git 2.36+) in git/config: git syncs objects and refs when it writes
# here. It replaced core.fsyncObjectFiles, which git now warns about.
GIT_FSYNC = b"objects,reference"
SETTLE_WAIT = 0.5  # seconds an open waits for the lock-file guard to settle the config


class GitDB(ObjectReader):
    """A repository's bare git repository (``.vsync/git``). Open with :meth:`open`."""

    def __init__(self, repo: Repo) -> None:
        super().__init__(repo.object_store)
        self._repo: Repo | None = repo
        self.path = Path(repo.commondir())
        self.control = self.path.parent  # where lockfiles.flock lives (.lockfiles)
        # vsync syncs every object and pack it writes, whatever git/config says
        # (dulwich reads only the deprecated core.fsyncObjectFiles for this).
        repo.object_store.fsync_object_files = True
        _fault_while_ref_locked(repo)

    # -- opening and closing ----------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> GitDB:
        def damage(problem: str) -> DamagedRepository:
            return DamagedRepository(
                f"{path} is not a readable git repository ({problem}); {FSCK_HINT}"
            )

        try:
            repo = Repo(str(path))
        except NotGitRepository as exc:
            drop_traceback(exc)
            raise damage("it is missing its objects, refs or HEAD") from None
        except Exception as exc:  # the conversion layer: a damaged config or layout
            problem = describe(exc)
            drop_traceback(exc)
            raise damage(problem) from None
        db = cls(repo)
        db._settle_config()
        return db

    def _settle_config(self) -> None:
        """Replace the deprecated ``core.fsyncObjectFiles`` of a repository made by an
        older vsync with ``core.fsync`` (git warns about the old key on every command).

        Best effort, on open: the config is rewritten atomically under the lock-file
        guard (waiting at most a moment for it); a folder that cannot be written, or a
        guard held by someone else, leaves the old key for a later open. Either key
        reads the same to vsync (see ``__init__``)."""
        try:
            self._git.get_config().get((b"core",), b"fsyncObjectFiles")
        except KeyError:
            return  # written by this vsync (or settled already)
        try:
            guard = RepoLock(self.control / GUARD, True, SETTLE_WAIT, record=False)
            with guard:
                config = ConfigFile.from_path(str(self.path / "config"))
                section = config[(b"core",)]
                if b"fsyncObjectFiles" in section:
                    del section[b"fsyncObjectFiles"]
                    if b"fsync" not in section:
                        config.set((b"core",), b"fsync", GIT_FSYNC)
                    try:
                        _write_config(config, self.path / "config")
                    except FileLocked as exc:  # we hold the guard: a killed writer's
                        break_stale(self.control, os.fsdecode(exc.lockfilename))
                        _write_config(config, self.path / "config")
        except (OSError, KeyError, ValueError, FileLocked, VsyncError) as exc:
            drop_traceback(exc)  # read-only, busy, or a lock file left behind: next time

    @staticmethod
    def init(path: Path, branch: bytes) -> None:
        """Create a bare git repository at ``path`` whose HEAD names ``branch``."""
        repo = Repo.init_bare(str(path), mkdir=True)
        try:
            repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(branch))
            config = repo.get_config()
            config.set((b"core",), b"fsync", GIT_FSYNC)
            config.set((b"core",), b"logAllRefUpdates", b"always")
            config.write_to_path()
        finally:
            repo.close()

    @property
    def _git(self) -> Repo:
        """dulwich's Repo (open)."""
        assert self._repo is not None, "the git database is closed"
        return self._repo

    def close(self) -> None:
        """Release every pack mapping and file. Safe after any error; never raises."""
        repo, self._repo = self._repo, None
        if repo is None:
            return
        try:
            packs = list(repo.object_store.packs)
        except Exception as exc:  # the conversion layer: an unreadable pack folder
            drop_traceback(exc)
            packs = []
        for pack in packs:
            _close_pack(pack)
        with contextlib.suppress(BufferError, OSError):  # a mapping goes with its last view
            repo.close()

    # -- refs -----------------------------------------------------------------------------

    def ref(self, name: bytes) -> bytes | None:
        """The object id ``name`` points at (symbolic refs followed); None if unset."""
        repo = self._git
        label = f"the ref {name.decode('utf-8', 'replace')}"

        def read() -> bytes | None:
            _names, value = repo.refs.follow(Ref(name))
            return value

        value = guarded(read, file_damage(label))
        if value is None:
            return None
        if not is_object_id(value):
            shown = value[:40].decode("ascii", "replace")
            raise DamagedRepository(f"{label} is damaged (it holds {shown!r}); {FSCK_HINT}")
        return value

    def ref_names(self) -> list[bytes]:
        """Every ref name (``HEAD`` included), sorted."""
        repo = self._git
        return guarded(lambda: sorted(repo.refs.allkeys()), file_damage("the refs"))

    def swap_ref(
        self,
        name: bytes,
        old: bytes | None,
        new: bytes | None,
        *,
        committer: bytes,
        message: bytes,
    ) -> bool:
        """Move ``name`` from ``old`` to ``new`` if it still points at ``old``.

        ``old`` None: the ref must not exist yet. ``new`` None: delete it.
        ``new`` must be a stored, readable commit (GitObjectDamaged if not), so
        a ref never points at something that is not there. A reflog line
        records the move. False if the ref had moved meanwhile.
        """
        if new is not None:
            self.commit(new)
        refs, ref = self._git.refs, Ref(name)
        if new is None and old is None:
            raise ValueError("swap_ref needs an old or a new value")

        def swap() -> bool:
            if new is None:
                assert old is not None
                return refs.remove_if_equals(
                    ref, ObjectID(old), committer=committer, message=message
                )
            if old is None:
                return refs.add_if_new(ref, ObjectID(new), committer=committer, message=message)
            return refs.set_if_equals(
                ref, ObjectID(old), ObjectID(new), committer=committer, message=message
            )

        faults.point("ref-swap")
        swapped = write_locked(self.control, swap)
        faults.point("ref-swapped")
        return swapped

    # -- reflogs ----------------------------------------------------------------------------

    def reflog_names(self) -> list[bytes]:
        """The refs that have a reflog, sorted."""
        logs = str(self.path / "logs")
        return guarded(lambda: sorted(iter_reflogs(logs)), file_damage("the reflogs"))

    def reflog(self, name: bytes) -> list[ReflogLine]:
        """The reflog of ``name``, oldest first, one item per line ([] if it has none)."""
        path = self.path / "logs" / os.fsdecode(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            strerror = exc.strerror or str(exc)
            drop_traceback(exc)
            what = f"the reflog of {name.decode('utf-8', 'replace')}"
            raise DamagedRepository(f"{what} cannot be read ({strerror}); {FSCK_HINT}") from None
        return [_reflog_line(line) for line in data.splitlines()]

    # -- writing -------------------------------------------------------------------------------

    def add(self, objects: Sequence[RawObject]) -> None:
        """Store ``objects`` as one new pack (nothing when empty)."""
        store = self._store
        fsync = bool(store.fsync_object_files)
        write_locked(self.control, lambda: write_pack(str(store.pack_dir), objects, fsync))

    def pack_stream(self) -> PackStream:
        """A stream of new objects for :meth:`install` (see :class:`PackStream`)."""
        return PackStream(str(self._store.pack_dir))

    def install(self, stream: PackStream) -> None:
        """Complete and store every pack of ``stream``, in the order they were started."""
        fsync = bool(self._store.fsync_object_files)
        write_locked(self.control, lambda: stream.install(fsync))

    def add_missing(self, objects: Iterable[RawObject]) -> None:
        """Store those of ``objects`` that are not stored yet."""
        todo = list(objects)
        if not todo:
            return
        stored = self.presence(len(todo))
        self.add([o for o in todo if o.id not in stored])

    # -- history ---------------------------------------------------------------------------------

    def merge_bases(self, commits: list[bytes]) -> list[bytes]:
        """The lowest common ancestors of ``commits[0]`` and any of ``commits[1:]``."""
        for cid in commits:
            self.commit(cid)
        repo = self._git
        label = "the history of " + ", ".join(c.decode()[:10] for c in commits)
        ids = [ObjectID(c) for c in commits]
        return guarded(lambda: list(find_merge_base(repo, ids)), file_damage(label))

    # -- upkeep (fsck, gc) ---------------------------------------------------------------------

    def damaged_packs(self) -> list[tuple[str, str]]:
        """``(name, problem)`` of each pack (``pack-<sha>``) whose checksums do not match."""
        damaged = []
        for base in self._pack_files():
            pack = Pack(base, object_format=self._store.object_format)
            try:
                pack.check_length_and_checksum()
                pack.index.check()  # recomputes the .idx checksum
                pack.data.check()  # recomputes the .pack checksum over all its bytes
            except Exception as exc:  # the conversion layer: any failure to verify is damage
                damaged.append((os.path.basename(base), describe(exc)))
                drop_traceback(exc)
            finally:
                _close_pack(pack)
        return damaged

    def set_aside(self, packs: Iterable[str], suspects: Iterable[bytes], aside: Path) -> SetAside:
        """Take damaged packs and loose objects out of use, keeping every object still readable.

        ``packs``: names (``pack-<sha>``) of packs whose checksums fail.
        ``suspects``: ids found damaged; a pack whose copy of one does not
        verify is taken out too, and so is a loose copy that does not.

        Order, each step safe to interrupt (``vsync fsck --repair``): every
        object those packs list that some copy anywhere still gives back
        verified is written to one new pack, complete with its index; then
        each damaged pack goes, ``.pack`` before ``.idx`` (an index without
        its pack is ignored). A pack listing an object that no copy gives back
        (or whose index cannot be read) is moved into ``aside`` rather than
        deleted, as is a damaged loose object with no good copy: their bytes
        are kept for whoever wants to salvage them, out of every reader's way.
        """
        report = SetAside()
        wanted = set(suspects)
        packs = set(packs)
        if not packs and not wanted:
            return report
        bases = {os.path.basename(b): b for b in self._pack_files()}
        fmt = self._store.object_format
        opened = {name: Pack(base, object_format=fmt) for name, base in bases.items()}
        try:
            chosen = {name for name in packs if name in opened}
            for name, pack in opened.items():
                if name not in chosen and any(
                    _in_pack(pack, oid) and _copy_in(pack, oid) is None for oid in wanted
                ):
                    chosen.add(name)
            kept: dict[bytes, RawObject] = {}
            lossy: set[str] = set()
            for name in sorted(chosen):
                listed = _listed(opened[name])
                if listed is None:
                    lossy.add(name)
                    continue
                for oid in listed:
                    if oid in kept:
                        continue
                    copy = self._good_copy(oid, [opened[name], *opened.values()])
                    if copy is None:
                        lossy.add(name)
                    else:
                        kept[oid] = copy
            fsync = bool(self._store.fsync_object_files)
            where, kept_objects = str(self._store.pack_dir), list(kept.values())
            write_locked(self.control, lambda: write_pack(where, kept_objects, fsync))
            loose = [
                oid
                for oid in sorted(wanted)
                if is_object_id(oid)
                and self._loose_path(oid).exists()
                and self._loose_copy(oid) is None
            ]
        finally:
            for pack in opened.values():
                _close_pack(pack)
        for pack in guarded(lambda: list(self._store.packs), file_damage("the git pack folder")):
            _close_pack(pack)  # the mappings of files about to go
        pack_dir = Path(self._store.pack_dir)
        for name in sorted(chosen):
            for suffix in (".pack", ".idx"):  # without its .pack an index is never read
                path = pack_dir / (name + suffix)
                if name in lossy:
                    report.moved.append(_move(path, aside / "pack" / path.name))
                else:
                    path.unlink(missing_ok=True)
                    report.removed.append(path.name)
        for oid in loose:
            path = self._loose_path(oid)
            if self._good_packed_copy(oid) is not None:
                path.unlink(missing_ok=True)
                report.removed.append(oid.decode())
            else:
                report.moved.append(_move(path, aside / "objects" / path.parent.name / path.name))
        fsync_dir(pack_dir)
        # dulwich forgets the packs that went (and closes them) when it lists the folder
        guarded(lambda: list(self._store.packs), file_damage("the git pack folder"))
        return report

    def _good_copy(self, oid: bytes, packs: Iterable[Pack]) -> RawObject | None:
        """A copy of ``oid`` that verifies, from the first of ``packs`` that has one,
        else from its loose file; None if no copy does."""
        for pack in packs:
            if _in_pack(pack, oid):
                copy = _copy_in(pack, oid)
                if copy is not None:
                    return copy
        return self._loose_copy(oid)

    def _good_packed_copy(self, oid: bytes) -> RawObject | None:
        """A verified copy of ``oid`` from any pack, opened afresh."""
        fmt = self._store.object_format
        for base in self._pack_files():
            pack = Pack(base, object_format=fmt)
            try:
                if _in_pack(pack, oid):
                    copy = _copy_in(pack, oid)
                    if copy is not None:
                        return copy
            finally:
                _close_pack(pack)
        return None

    def _loose_path(self, oid: bytes) -> Path:
        name = oid.decode("ascii")
        return Path(self._store.path) / name[:2] / name[2:]

    def _loose_copy(self, oid: bytes) -> RawObject | None:
        """The loose copy of ``oid`` if there is one and it verifies."""
        try:
            obj = self._store._get_loose_object(ObjectID(oid))
            if obj is None:
                return None
            copy = RawObject(obj.type_num, oid, obj.as_raw_string())
        except Exception as exc:  # the conversion layer: an unreadable copy is no copy
            drop_traceback(exc)
            return None
        return copy if _verifies(copy) else None

    def _pack_files(self) -> list[str]:
        """The base paths (no suffix) of the packs readers use: a ``.pack`` with its ``.idx``."""
        pack_dir = self._store.pack_dir
        names = guarded(lambda: set(os.listdir(pack_dir)), file_damage("the git pack folder"))
        return [
            os.path.join(pack_dir, n[: -len(".pack")])
            for n in sorted(names)
            if n.endswith(".pack") and n[: -len(".pack")] + ".idx" in names
        ]

    def _loose_ids(self) -> list[bytes]:
        root = self._store.path

        def walk() -> list[bytes]:
            out: list[bytes] = []
            for sub in sorted(os.listdir(root)):
                if len(sub) == 2:
                    out.extend(os.fsencode(sub + rest) for rest in os.listdir(f"{root}/{sub}"))
            return [oid for oid in out if is_object_id(oid)]

        return guarded(walk, file_damage("the git object store"))

    def unfinished_packs(self) -> list[Path]:
        """Pack files a killed writer left: a ``.pack`` with no ``.idx``, temp packs.

        Readers only open a pack whose ``.idx`` exists, and the ``.idx`` is
        written last, so these are invisible and hold nothing a ref names.
        """
        objects_dir = Path(self._store.path)
        pack_dir = objects_dir / "pack"
        out = [p for p in objects_dir.glob("tmp_pack_*") if p.is_file()]
        try:
            names = set(os.listdir(pack_dir))
        except FileNotFoundError:
            return out
        for name in sorted(names):
            if name.endswith(".pack") and name[: -len(".pack")] + ".idx" not in names:
                out.append(pack_dir / name)
        return out

    def remove_stale_locks(self) -> list[str]:
        """Delete ``*.lock`` files left by killed processes (under the lock-file guard).

        dulwich writes refs, packed-refs and pack indexes through ``X.lock``
        files; one left by a killed process would block every later update of X
        (:mod:`.lockfiles` also breaks them one by one as writes meet them).
        """
        notes = []
        with lockfile_guard(self.control):  # no lock file is being written meanwhile
            for dirpath, _dirs, files in os.walk(self.path):
                for name in files:
                    if name.endswith(".lock"):
                        path = Path(dirpath) / name
                        path.unlink(missing_ok=True)
                        notes.append(
                            f"removed {path.relative_to(self.path.parent)}, "
                            "left by an interrupted command"
                        )
        return notes

    def repack(self, keep: set[bytes]) -> int:
        """One pack of the objects in ``keep``; everything else goes. Returns how many went.

        Every kept object is read and verified first (damage stops it before
        any change); the new pack is complete before old packs and loose
        objects are deleted.
        """
        stored = self.object_ids()
        dropped = stored - keep
        old_packs, loose = self._pack_files(), self._loose_ids()
        if not dropped and not loose and len(old_packs) <= 1:
            return 0
        objects = []
        for oid in sorted(stored & keep):
            found = self._raw(oid, "object")
            if found is not None:  # None: vanished meanwhile, nothing to keep
                objects.append(RawObject(found[0], oid, found[1]))
        fsync = bool(self._store.fsync_object_files)
        pack_dir = str(self._store.pack_dir)
        new = write_locked(self.control, lambda: write_pack(pack_dir, objects, fsync))
        for pack in guarded(lambda: list(self._store.packs), file_damage("the git pack folder")):
            _close_pack(pack)  # the mappings of files about to go
        for base in old_packs:
            if base != new:
                for suffix in (".idx", ".pack"):  # without its .idx a pack is invisible
                    Path(base + suffix).unlink(missing_ok=True)
        for oid in loose:
            self._store.delete_loose_object(ObjectID(oid))
        return len(dropped)

    def stored_bytes(self) -> int:
        """Bytes of every file of the object store."""
        root = Path(self._store.path)
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _fault_while_ref_locked(repo: Repo) -> None:
    """The fault point ``ref-lock-held``: dulwich writes a ref's reflog line while the
    ref's ``.lock`` file exists, so a test can stop or kill a process right there."""
    refs = repo.refs
    log = getattr(refs, "_logger", None)
    if log is None or not faults.wanted("ref-lock-held"):
        return

    def logged(*args: object) -> None:
        faults.point("ref-lock-held")
        log(*args)

    refs._logger = logged


def _close_pack(pack: Pack) -> None:
    """Close ``pack``; a mapping some view still holds is left to go with that view."""
    for _attempt in range(2):
        try:
            pack.close()
            return
        except BufferError:
            gc.collect()  # a view into the mapping still lives in some cycle


def _reflog_line(line: bytes) -> ReflogLine:
    try:
        e = parse_reflog_line(line)
        ok = is_object_id(e.old_sha) and is_object_id(e.new_sha)
    except (ValueError, IndexError):
        ok = False
    if not ok:  # it may still name its commits
        return TornReflogLine(tuple(i for i in _SHA.findall(line[:81]) if i != ZERO_ID))
    return ReflogEntry(
        None if e.old_sha == ZERO_ID else e.old_sha,
        None if e.new_sha == ZERO_ID else e.new_sha,
        e.committer,
        int(e.timestamp),
        int(e.timezone),
        e.message,
    )


@dataclass
class SetAside:
    """What :meth:`GitDB.set_aside` did."""

    moved: list[str] = field(default_factory=list)  # files moved aside (paths there)
    removed: list[str] = field(default_factory=list)  # damaged files deleted (all kept)


def _verifies(obj: RawObject) -> bool:
    return obj.type_num in TYPE_NAMES and object_id(obj.type_num, obj.raw) == obj.id


def _in_pack(pack: Pack, oid: bytes) -> bool:
    """Whether ``pack``'s index lists ``oid`` (False if the index cannot be read)."""
    try:
        return ObjectID(oid) in pack
    except Exception as exc:  # the conversion layer: an unreadable index lists nothing
        drop_traceback(exc)
        return False


def _copy_in(pack: Pack, oid: bytes) -> RawObject | None:
    """``pack``'s copy of ``oid`` if it can be read and verifies."""
    try:
        type_num, raw = pack.get_raw(ObjectID(oid))
        copy = RawObject(type_num, oid, bytes(raw))
    except Exception as exc:  # the conversion layer: a damaged copy is no copy
        drop_traceback(exc)
        return None
    return copy if _verifies(copy) else None


def _listed(pack: Pack) -> list[bytes] | None:
    """The ids ``pack``'s index lists, or None if it cannot be read."""
    try:
        return [bytes(oid) for oid in pack]
    except Exception as exc:  # the conversion layer: an unreadable index
        drop_traceback(exc)
        return None


def _move(path: Path, dest: Path) -> str:
    """Move ``path`` to ``dest`` (same file system), durably; returns where it went."""
    if not path.exists():
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    fsync_dir(dest.parent)
    return str(dest)


def _write_config(config: ConfigFile, path: Path) -> None:
    """``config`` to ``path`` through its lock file (synced, then renamed over it)."""
    f = GitFile(str(path), "wb")
    try:
        config.write_to_file(f)
        faults.point("git-config-written")  # config.lock complete, not yet renamed
    except BaseException:
        f.abort()
        raise
    f.close()
