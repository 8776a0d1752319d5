"""The versions of one path, and the commits of a folder with what each changed.

This is what ``vsync history`` shows; nothing here draws or prints.

- :func:`load_history`: for a file (or symlink) path, its versions: every
  commit, newest first, whose first parent holds something else at the path
  and which holds a file or symlink there (a deletion is not a version);
  each with its size, chunk count and manifest id. For a folder (``""`` is
  the whole folder): the commits that changed something under it, each with
  its changed paths (A/M/D/T against the first parent).
- :func:`content_blake3`: the BLAKE3-256 of a version's whole content,
  streamed through the verified chunks. The manifest id is the git blob id of
  the chunk list, not a hash of the content, so this is computed on demand.
- :func:`read_preview`: the head of a version's content (bounded in bytes and
  lines), as text lines or "binary".
- :func:`pairs_with_folder`, :func:`pairs_between`, :func:`pairs_of_commit`:
  the changed paths of the diffs the browser shows; it reads each path's diff
  (:func:`vsync.ops.diff.file_diffs`) only as far as it is shown.
- :func:`restore_in_place` (:func:`vsync.ops.restore.restore`: it refuses to
  overwrite uncommitted changes) and :func:`save_beside` (a new file next to
  the path, ``name.<10 hex>.ext``, never over an existing one).
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vsync.errors import DamagedRepository, UsageError
from vsync.model.folder_scan import MODE_LINK, MODE_TREE
from vsync.model.gitdb import MODE_GITLINK
from vsync.model.holdback import TRUST_KEY
from vsync.model.manifest import Manifest
from vsync.model.materialize import FolderTemps, manifest_chunks, write_file
from vsync.model.repository import Repository
from vsync.model.snapshot import commit_tree, lookup
from vsync.ops.checkout import Warn
from vsync.ops.diff import (
    Pair,
    Version,
    name_status,
    revision_pairs,
    working_pairs,
)
from vsync.ops.log import LogEntry, walk
from vsync.ops.restore import RestoreResult, restore
from vsync.store.codec import content_hasher

PREVIEW_BYTES = 1024 * 1024
PREVIEW_LINES = 2000
SNIFF = 8 * 1024
SHORT = 10


@dataclass(frozen=True)
class _OfCommit:
    entry: LogEntry  # the commit

    @property
    def commit_id(self) -> bytes:
        return self.entry.commit_id

    @property
    def short(self) -> str:
        return self.entry.commit_id.decode()[:SHORT]


@dataclass(frozen=True)
class FileVersion(_OfCommit):
    """One version of a file or symlink: the commit that made it and what it holds."""

    path: str
    mode: int
    oid: bytes  # the manifest blob id (a symlink: the blob holding its target)
    size: int
    chunk_count: int  # 0 for a symlink

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK


@dataclass(frozen=True)
class FolderCommit(_OfCommit):
    """A commit and the paths (under the browsed folder) it changed against its first parent."""

    changes: list[tuple[str, str]]  # (A/M/D/T, path)


@dataclass
class PathHistory:
    """What ``vsync history PATH`` browses: a file's versions, or a folder's commits."""

    path: str  # "" is the whole folder
    folder: bool  # True: ``commits`` of a folder; False: ``versions`` of a file or symlink
    versions: list[FileVersion] = field(default_factory=list)
    commits: list[FolderCommit] = field(default_factory=list)


class PreviewKind(enum.Enum):
    TEXT = "text"
    BINARY = "binary"
    SYMLINK = "symlink"


@dataclass
class Preview:
    kind: PreviewKind
    lines: list[str] = field(default_factory=list)
    truncated: bool = False  # the content goes on beyond the lines shown
    target: str = ""  # a symlink's target


# -- listing ----------------------------------------------------------------------------


def _manifest(repo: Repository, v: FileVersion) -> Manifest:
    return repo.gitdb.manifest(v.oid, f"manifest of '{v.path}' in {v.short}")


def file_versions(repo: Repository, path: str) -> list[FileVersion]:
    """The versions of the file or symlink at ``path``, newest first."""
    head = repo.head()
    if head is None:
        return []
    db = repo.gitdb
    out: list[FileVersion] = []
    for entry in walk(repo, head, [path]):
        mode, oid = lookup(db, commit_tree(db, entry.commit_id), path)
        if mode is None or mode in (MODE_TREE, MODE_GITLINK):
            continue
        if mode == MODE_LINK:
            size, count = len(db.link_target(oid)), 0
        else:
            where = f"manifest of '{path}' in {entry.commit_id.decode()[:SHORT]}"
            manifest = db.manifest(oid, where)
            size, count = manifest.size, len(manifest.chunks)
        out.append(FileVersion(entry, path, mode, oid, size, count))
    return out


def folder_commits(repo: Repository, path: str = "") -> list[FolderCommit]:
    """The commits that changed something at or under ``path``, newest first."""
    head = repo.head()
    if head is None:
        return []
    paths = [path] if path else None
    out: list[FolderCommit] = []
    for entry in walk(repo, head, paths):
        parent = entry.parents[0] if entry.parents else None
        pairs = revision_pairs(repo, parent, entry.commit_id, paths)
        out.append(FolderCommit(entry, name_status(pairs)))
    return out


def load_history(repo: Repository, path: str) -> PathHistory:
    """What ``vsync history PATH`` browses; raises UsageError when PATH is in no commit."""
    if not path:
        return PathHistory("", True, commits=folder_commits(repo))
    head = repo.head()
    db = repo.gitdb
    now = lookup(db, commit_tree(db, head), path)[0] if head is not None else None
    if now != MODE_TREE:
        versions = file_versions(repo, path)
        if versions:
            return PathHistory(path, False, versions=versions)
    commits = folder_commits(repo, path) if head is not None else []
    if not commits:
        raise UsageError(
            f"'{path}' is not in any commit, so it has no versions "
            "('vsync status' shows what is not committed yet)"
        )
    return PathHistory(path, True, commits=commits)


# -- content ----------------------------------------------------------------------------


def content_blake3(
    repo: Repository, v: FileVersion, stop: Callable[[], bool] | None = None
) -> str | None:
    """The hex BLAKE3-256 of the version's content (every chunk verified on the way).

    None when ``stop`` returned True between two chunks.
    """
    hasher = content_hasher()
    if v.is_link:
        hasher.update(repo.gitdb.link_target(v.oid))
        return str(hasher.hexdigest())
    manifest = _manifest(repo, v)
    for cid, length in manifest.chunks:
        if stop is not None and stop():
            return None
        data = repo.chunks.read(cid)
        if len(data) != length:
            raise DamagedRepository(f"chunk {cid.hex()[:16]} has the wrong length")
        hasher.update(data)
    return str(hasher.hexdigest())


def _head_bytes(repo: Repository, manifest: Manifest, limit: int) -> bytes:
    buf = bytearray()
    for data in manifest_chunks(repo.chunks, manifest):
        buf += data
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def read_preview(
    repo: Repository,
    v: FileVersion,
    max_bytes: int = PREVIEW_BYTES,
    max_lines: int = PREVIEW_LINES,
) -> Preview:
    """At most ``max_lines`` lines of the first ``max_bytes`` bytes, or "binary"."""
    if v.is_link:
        target = repo.gitdb.link_target(v.oid)
        return Preview(PreviewKind.SYMLINK, target=os.fsdecode(target))
    data = _head_bytes(repo, _manifest(repo, v), max_bytes)
    if b"\0" in data[:SNIFF]:
        return Preview(PreviewKind.BINARY)
    cut = len(data) < v.size
    try:  # a cut may fall inside a character: the incremental decoder keeps it back
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not cut)
    except UnicodeDecodeError:
        return Preview(PreviewKind.BINARY)
    lines = text.split("\n")
    if lines and lines[-1] == "" and not cut:
        lines.pop()
    truncated = cut or len(lines) > max_lines
    return Preview(PreviewKind.TEXT, lines[:max_lines], truncated)


# -- diffs -------------------------------------------------------------------------------


def pairs_with_folder(repo: Repository, commit_id: bytes, path: str, warn: Warn) -> list[Pair]:
    """What differs from the commit's ``path`` ('' everything) to the working folder now."""
    return working_pairs(repo, commit_id, [path] if path else None, warn)


def pairs_between(old: FileVersion | None, new: FileVersion) -> list[Pair]:
    """From one version of a file to another (``old`` None: from nothing)."""
    a = Version(old.mode, old.oid) if old is not None else None
    b = Version(new.mode, new.oid)
    return [] if a == b else [(new.path, a, b)]


def pairs_of_commit(repo: Repository, c: FolderCommit, path: str = "") -> list[Pair]:
    """What the commit changed (under ``path``) against its first parent."""
    parent = c.entry.parents[0] if c.entry.parents else None
    return revision_pairs(repo, parent, c.commit_id, [path] if path else None)


# -- putting a version back --------------------------------------------------------------


def restore_in_place(repo: Repository, v: FileVersion, warn: Warn) -> RestoreResult:
    """Write the version at its own path; UncommittedChanges if that would lose edits."""
    return restore(repo, [v.path], source=v.commit_id.decode(), force=False, warn=warn)


def beside_name(path: str, commit_id: bytes) -> str:
    """``dir/name.ext`` -> ``dir/name.<10 hex>.ext`` (``.bashrc`` -> ``.bashrc.<10 hex>``)."""
    folder, _, base = path.rpartition("/")
    stem, ext = os.path.splitext(base)
    name = f"{stem}.{commit_id.decode()[:SHORT]}{ext}"
    return f"{folder}/{name}" if folder else name


def _parent_folder(root: Path, rel: str) -> Path:
    """The folder ``rel`` goes in, created if missing; never through a symlink or a file."""
    here = root
    for part in rel.split("/")[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise UsageError(f"'{here.relative_to(root)}' is not a folder; nothing was written")
        if not here.exists():
            here.mkdir()
    return here


def save_beside(repo: Repository, v: FileVersion) -> str:
    """Write the version next to its path under :func:`beside_name`; returns that path.

    Refuses (UsageError) when something is already there: nothing is overwritten.
    """
    with repo.lock(exclusive=True):  # the folder's writers hold it (materialize)
        return _save_beside(repo, v)


def _save_beside(repo: Repository, v: FileVersion) -> str:
    root = repo.require_worktree()
    rel = beside_name(v.path, v.commit_id)
    how = repo.holds.decide(rel, v.mode)
    if how is None:
        raise UsageError(
            f"'{rel}' would be a git hook or config, which vsync does not write "
            f"(see {TRUST_KEY} in the user guide); nothing was written"
        )
    target = _parent_folder(root, rel) / rel.rpartition("/")[2]
    exists = UsageError(f"'{rel}' already exists; nothing was written (move it away first)")
    if os.path.lexists(target):
        raise exists
    if v.is_link:
        try:
            os.symlink(os.fsdecode(repo.gitdb.link_target(v.oid)), target)
        except FileExistsError:
            raise exists from None
        return rel
    manifest = _manifest(repo, v)
    temps = FolderTemps(repo.control)
    tmp = temps.beside(target)
    try:
        write_file(repo.chunks, manifest, tmp, how, temps)  # atomic, every chunk verified
        try:
            os.link(tmp, target)  # fails rather than replace anything that appeared meanwhile
        except FileExistsError:
            raise exists from None
        except OSError as exc:  # a file system without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if os.path.lexists(target):
                raise exists from None
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        temps.done()
    return rel
