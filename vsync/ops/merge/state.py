"""The merge state: what an unfinished merge recorded in ``.vsync/merge/state``.

It exists from the moment a merge starts writing the working folder until
the merge commit is made (or the merge is aborted). It names the two
commits, the bases, every conflicted path with its three sides and whether
it is resolved, and a backup of every path the merge changed in the folder,
so ``vsync merge --abort`` can put the folder back exactly as it was.

Record format, version 1 (written to ``state.tmp``, fsync, ``os.replace``)::

    header   b"VSYNC-MERGESTATE 1\\n"   (the number is the format version)
    records  repeated: type (1 ASCII letter), length (u32, big-endian),
             payload (length bytes); a payload is UTF-8 fields separated by
             NUL bytes
    end      an ``E`` record whose payload is the lowercase hex SHA-256 of
             every byte before it; nothing may follow it

An *entry* field is ``"<octal git mode> <hex object id>"`` (a manifest blob
for a regular file, a symlink blob), or empty for "no such path".

Record types. Upper case: mandatory, a reader that does not know one must
refuse the whole file. Lower case: optional, a reader that does not know one
skips it (and may drop it when it rewrites the file).

====  ======================================================================
L     ours: the commit the branch pointed at when the merge started
      (hex; empty before the first commit). Exactly one.
O     theirs: the commit merged in (hex). Exactly one.
B     a merge base (hex); zero (unrelated histories) or more (several:
      the merge used a virtual base). In order, oldest first.
F     a conflicted path: path, state (``u`` unresolved, ``r`` resolved),
      kind (content, binary, add-add, modify-delete, delete-modify, type,
      file-folder), git status code (UU AA DU UD AU UA), then entries for
      base, ours, theirs and what the merge left in place, then the
      conflict copy's path (empty: none) and its entry.
K     a backup: path, and the entry the working folder held there before
      the merge changed it (empty: nothing was there; the merge created
      it, abort removes it). Every backup's content is in the repository.
D     a folder the merge created (abort removes it when empty).
V     a version that ``vsync resolve`` replaced or removed: path, entry
      (kept so that no edit is ever lost; its content is in the repository).
l     labels: ours marker label, theirs marker label, base marker label.
t     when the merge started: seconds since the epoch.
w     (empty payload) the merge is writing the working folder: saved before
      the first file is written, dropped once the last one is. Found later,
      the merge was interrupted while writing: ``vsync commit`` refuses it,
      and the next ``vsync merge``, ``pull`` or ``sync`` aborts it (the
      backups put the folder back) and merges again. So does a clean merge
      (no F record) interrupted before its commit.
E     the end record (see above).
====  ======================================================================

Every object id named by F, K and V records is live for ``vsync gc`` while
the merge state exists (the content a merge wrote or backed up is not yet
reachable from any commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import DamagedRepository, UnsafePath, UnsupportedFormat
from vsync.model.paths import check_repo_path
from vsync.model.repository import MERGE_STATE, Repository
from vsync.model.snapshot import Entry
from vsync.ops.merge.plan import CONFLICT_KINDS, UNMERGED_CODES
from vsync.store.chunkstore import fsync_dir, replace_durably

MAGIC = b"VSYNC-MERGESTATE"
VERSION = 1
LENGTH = struct.Struct(">I")
STATE_DIR, STATE_FILE = MERGE_STATE.split("/")  # what status looks for


@dataclass
class PathState:
    path: str
    kind: str
    code: str
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    in_place: Entry | None
    copy: str | None = None
    copy_entry: Entry | None = None
    resolved: bool = False


@dataclass
class MergeState:
    control: Path  # the repository's control folder
    ours: bytes | None
    theirs: bytes
    bases: list[bytes] = field(default_factory=list)
    labels: tuple[str, str, str] = ("ours", "theirs", "base")
    files: dict[str, PathState] = field(default_factory=dict)
    backups: dict[str, Entry | None] = field(default_factory=dict)
    created_dirs: list[str] = field(default_factory=list)
    kept: list[tuple[str, Entry]] = field(default_factory=list)
    started: int = 0
    writing: bool = False  # the merge is writing the folder (interrupted if found so)

    # -- queries -----------------------------------------------------------------------

    def unresolved(self) -> list[str]:
        return sorted(p for p, s in self.files.items() if not s.resolved)

    def mark_resolved(self, path: str) -> None:
        try:
            self.files[path].resolved = True
        except KeyError:
            raise KeyError(f"'{path}' is not a conflicted path of this merge") from None

    def blob_ids(self) -> set[bytes]:
        """Every object id the state names (gc must keep them and their chunks)."""
        out: set[bytes] = set()
        for s in self.files.values():
            for e in (s.base, s.ours, s.theirs, s.in_place, s.copy_entry):
                if e is not None:
                    out.add(e[1])
        out.update(e[1] for e in self.backups.values() if e is not None)
        out.update(e[1] for _p, e in self.kept)
        return out

    # -- files -------------------------------------------------------------------------

    @staticmethod
    def folder(control: Path) -> Path:
        return control / STATE_DIR

    @classmethod
    def load(cls, repo: Repository) -> MergeState | None:
        """The merge in progress, or None."""
        path = cls.folder(repo.control) / STATE_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            state = cls.from_bytes(repo.control, data, str(path))
        except UnsupportedFormat:
            raise
        except DamagedRepository as exc:
            raise DamagedRepository(
                f"{exc}; to give up on the merge, remove {path.parent} "
                "(the folder keeps what the merge wrote; 'vsync status' shows it)"
            ) from None
        head = repo.head()
        if head is not None and head != state.ours:
            parents = repo.gitdb.commit(head).parents
            if parents == (state.ours, state.theirs):  # committed, killed before the clear
                state.clear()
                return None
        return state

    def save(self) -> None:
        folder = self.folder(self.control)
        folder.mkdir(exist_ok=True)
        replace_durably(folder / STATE_FILE, self.to_bytes(), "merge-state-written")

    def clear(self) -> None:
        """Forget the merge (after its commit, or once aborted)."""
        clear_state(self.control)

    # -- encoding ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC + b" " + str(VERSION).encode() + b"\n")

        def rec(kind: str, *fields: str) -> None:
            payload = b"\0".join(f.encode("utf-8", "surrogateescape") for f in fields)
            out.extend(kind.encode("ascii") + LENGTH.pack(len(payload)) + payload)

        rec("L", self.ours.decode() if self.ours else "")
        rec("O", self.theirs.decode())
        for b in self.bases:
            rec("B", b.decode())
        rec("l", *self.labels)
        rec("t", str(self.started))
        if self.writing:
            rec("w")
        for path in sorted(self.files):
            s = self.files[path]
            rec(
                "F",
                s.path,
                "r" if s.resolved else "u",
                s.kind,
                s.code,
                _entry(s.base),
                _entry(s.ours),
                _entry(s.theirs),
                _entry(s.in_place),
                s.copy or "",
                _entry(s.copy_entry),
            )
        for path in sorted(self.backups):
            rec("K", path, _entry(self.backups[path]))
        for folder in self.created_dirs:
            rec("D", folder)
        for path, entry in self.kept:
            rec("V", path, _entry(entry))
        rec("E", hashlib.sha256(out).hexdigest())
        return bytes(out)

    @classmethod
    def from_bytes(cls, control: Path, data: bytes, where: str = "merge state") -> MergeState:
        """Decode a merge state; DamagedRepository (or UnsupportedFormat) for anything else.

        The records are framed and the checksum verified first, so damage is
        reported as damage whatever record it happened to hit."""
        state = cls(control, None, b"")
        seen: dict[str, int] = {"L": 0, "O": 0}
        for kind, payload in _records(data, where):
            try:
                fields = [f.decode("utf-8", "surrogateescape") for f in payload.split(b"\0")]
                if kind == "L":
                    state.ours = _hex_id(fields[0]) if fields[0] else None
                elif kind == "O":
                    state.theirs = _hex_id(fields[0])
                else:
                    _read_record(state, kind, fields, where)
            except (IndexError, ValueError, UnsafePath):
                raise DamagedRepository(f"{where}: record '{kind}' is malformed") from None
            if kind in seen:
                seen[kind] += 1
        if seen != {"L": 1, "O": 1}:
            raise DamagedRepository(f"{where} does not name both sides of the merge exactly once")
        return state


def _records(data: bytes, where: str) -> list[tuple[str, bytes]]:
    """The records before the end record, once the header and checksum check out."""
    nl = data.find(b"\n")
    header = data[:nl] if nl >= 0 else b""
    magic, _, version = header.partition(b" ")
    if magic != MAGIC or not version.isdigit() or len(version) > 9:
        raise DamagedRepository(f"{where} is not a vsync merge state; it is damaged")
    if int(version) > VERSION:
        raise UnsupportedFormat(
            f"{where} has format {int(version)}, newer than this vsync reads ({VERSION}); "
            "finish or abort the merge with a newer vsync"
        )
    records: list[tuple[str, bytes]] = []
    pos = nl + 1
    while pos < len(data):
        if pos + 1 + LENGTH.size > len(data):
            raise DamagedRepository(f"{where} is truncated")
        kind = data[pos : pos + 1]
        (length,) = LENGTH.unpack_from(data, pos + 1)
        start = pos + 1 + LENGTH.size
        if start + length > len(data):
            raise DamagedRepository(f"{where} is truncated")
        payload = data[start : start + length]
        if kind == b"E":
            if payload != hashlib.sha256(data[:pos]).hexdigest().encode():
                raise DamagedRepository(f"{where} is damaged (its checksum does not match)")
            if start + length != len(data):
                raise DamagedRepository(f"{where} has data after its end record")
            for k, _payload in records:
                if not (k.isascii() and k.isalpha()):
                    raise DamagedRepository(f"{where} holds a record of no valid type")
            return records
        records.append((kind.decode("latin-1"), payload))
        pos = start + length
    raise DamagedRepository(f"{where} is truncated (no end record)")


def _read_record(state: MergeState, kind: str, fields: list[str], where: str) -> None:
    if kind == "B":
        state.bases.append(_hex_id(fields[0]))
    elif kind == "F":
        path, st, ckind, code = fields[:4]
        if st not in ("u", "r") or ckind not in CONFLICT_KINDS or code not in UNMERGED_CODES:
            raise ValueError(st)
        copy = check_repo_path(fields[8]) if fields[8] else None
        state.files[check_repo_path(path)] = PathState(
            path,
            ckind,
            code,
            _parse(fields[4]),
            _parse(fields[5]),
            _parse(fields[6]),
            _parse(fields[7]),
            copy,
            _parse(fields[9]),
            st == "r",
        )
    elif kind == "K":
        state.backups[check_repo_path(fields[0])] = _parse(fields[1])
    elif kind == "D":
        state.created_dirs.append(check_repo_path(fields[0]))
    elif kind == "V":
        entry = _parse(fields[1])
        if entry is None:
            raise ValueError("empty V entry")
        state.kept.append((check_repo_path(fields[0]), entry))
    elif kind == "l":
        state.labels = (fields[0], fields[1], fields[2])
    elif kind == "t":
        state.started = int(fields[0])
    elif kind == "w":
        state.writing = True
    elif kind.isupper():
        raise UnsupportedFormat(
            f"{where} holds a record of type '{kind}' that this vsync does not know; "
            "finish or abort the merge with the newer vsync that started it"
        )
    # an unknown optional (lower-case) record: skipped


def _entry(entry: Entry | None) -> str:
    return "" if entry is None else f"{entry[0]:o} {entry[1].decode()}"


_HEX_ID = re.compile(r"[0-9a-f]{40}")
_MODE = re.compile(r"[0-7]{1,7}")


def _hex_id(text: str) -> bytes:
    """A 40-hex object id field; ValueError for anything else."""
    if not _HEX_ID.fullmatch(text):
        raise ValueError(text)
    return text.encode("ascii")


def _parse(text: str) -> Entry | None:
    """An entry field: None when empty; ValueError unless ``<octal mode> <40 hex>``."""
    if not text:
        return None
    mode, oid = text.split(" ")
    if not _MODE.fullmatch(mode):
        raise ValueError(mode)
    return int(mode, 8), _hex_id(oid)


def clear_state(control: Path) -> None:
    folder = MergeState.folder(control)
    with contextlib.suppress(FileNotFoundError):
        (folder / STATE_FILE).unlink()
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        fsync_dir(control)


def new_state(control: Path, ours: bytes | None, theirs: bytes) -> MergeState:
    return MergeState(control, ours, theirs, started=int(time.time()))


def status_codes(state: MergeState) -> list[tuple[str, str]]:
    """``(git unmerged code, path)`` for every unresolved path, sorted by path."""
    return [(state.files[p].code, p) for p in state.unresolved()]
