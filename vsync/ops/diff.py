"""``vsync diff``: what changed between two snapshots, or a snapshot and the working folder.

A diff is computed in two steps. First the *pairs*: every path whose entry
(git mode, object id) differs, as ``(path, old, new)`` with ``None`` for an
absent side, sorted by path. Then, lazily and one path at a time, a
:class:`FileDiff` per pair:

- ``mode``: same content, only the exec bit changed;
- ``text``: both sides are text (no NUL byte in the first 8 KiB, valid UTF-8,
  at most 16 MiB each); ``lines`` holds unified-diff hunks (3 lines of context)
  ending in ``\\n``, with git's ``\\ No newline at end of file`` marker;
- ``binary``: anything else; only the sizes and object ids are reported.

A file that became a symlink (or the reverse) is reported as a deletion and
an addition, as git does. Symlinks are compared by their target text.
Committed content is read chunk by chunk from the chunk store, every chunk
verified; working-folder content is read from disk. At most 16 MiB of each
side is ever held in memory, and only for text.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vsync.model.folder_scan import MODE_LINK
from vsync.model.folder_snapshot import read_working
from vsync.model.gitdb import MODE_GITLINK, ChangeSide
from vsync.model.manifest import Manifest
from vsync.model.materialize import manifest_chunks
from vsync.model.paths import check_tree_path, is_under
from vsync.model.repository import Repository
from vsync.model.snapshot import commit_tree, flatten_commit

TEXT_LIMIT = 16 * 1024 * 1024
SNIFF = 8 * 1024


@dataclass(frozen=True)
class Version:
    """One side of a changed path: its git mode and object id (a manifest or link blob)."""

    mode: int
    oid: bytes
    disk: str | None = None  # a working-folder file: read it from here

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK


Pair = tuple[str, Version | None, Version | None]


class DiffKind(enum.Enum):
    """How a path's diff reads: text lines, two sizes, or only a mode change."""

    TEXT = "text"
    BINARY = "binary"
    MODE = "mode"  # same content, another mode


@dataclass
class FileDiff:
    path: str
    old: Version | None
    new: Version | None
    kind: DiffKind
    lines: list[str] = field(default_factory=list)
    old_size: int | None = None
    new_size: int | None = None

    @property
    def mode_changed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.mode != self.new.mode


# -- which paths changed ---------------------------------------------------------------


def _selected(path: str, paths: list[str] | None) -> bool:
    return not paths or any(is_under(path, p) for p in paths)


def _version(side: ChangeSide | None) -> Version | None:
    if side is None or side.mode == MODE_GITLINK:
        return None
    return Version(side.mode, side.id)


def revision_pairs(
    repo: Repository, old_commit: bytes | None, new_commit: bytes, paths: list[str] | None = None
) -> list[Pair]:
    """Changed paths from ``old_commit`` (None: nothing) to ``new_commit``."""
    db = repo.gitdb
    old_tree = commit_tree(db, old_commit) if old_commit is not None else None
    new_tree = commit_tree(db, new_commit)
    pairs: list[Pair] = []
    for change in db.tree_changes(old_tree, new_tree):
        old, new = _version(change.old), _version(change.new)
        side = change.new if new is not None else change.old
        if (old is None and new is None) or side is None:
            continue
        path = check_tree_path(side.path)
        if _selected(path, paths):
            pairs.append((path, old, new))
    pairs.sort(key=lambda p: p[0])
    return pairs


def working_pairs(
    repo: Repository,
    commit: bytes | None,
    paths: list[str] | None,
    warn: Callable[[str], None],
) -> list[Pair]:
    """Changed paths from ``commit`` (None: nothing) to the working folder."""
    prefixes = None if not paths or "" in paths else paths
    old = flatten_commit(repo.gitdb, commit, prefixes or [""])
    with repo.ingester() as ingester:
        state = read_working(repo, ingester, warn, None, prefixes=prefixes)
    for path in state.skipped:  # kept changing while read: no stable side to compare
        old.pop(path, None)
    for path in [p for p in old if any(is_under(p, u) for u in state.unreadable)]:
        del old[path]  # could not be read: not known to have changed
    pairs: list[Pair] = []
    for path in sorted(old.keys() | state.flat.keys()):
        a, b = old.get(path), state.flat.get(path)
        if a == b:
            continue
        pairs.append(
            (
                path,
                Version(*a) if a is not None else None,
                Version(b[0], b[1], state.files[path].disk) if b is not None else None,
            )
        )
    return pairs


def name_status(pairs: list[Pair]) -> list[tuple[str, str]]:
    """git's status letters: A added, D deleted, T file <-> symlink, M modified (or mode)."""
    out: list[tuple[str, str]] = []
    for path, old, new in pairs:
        if old is None:
            out.append(("A", path))
        elif new is None:
            out.append(("D", path))
        elif old.is_link != new.is_link:
            out.append(("T", path))
        else:
            out.append(("M", path))
    return out


# -- reading content -------------------------------------------------------------------


class ContentReader:
    """Sizes and (bounded) text of a :class:`Version`, committed or in the working folder."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.db = repo.gitdb

    def _manifest(self, v: Version) -> Manifest:
        return self.db.manifest(v.oid)

    def _link_target(self, v: Version) -> bytes:
        if v.disk is not None:
            return os.fsencode(os.readlink(v.disk))
        return self.db.link_target(v.oid)

    def size(self, v: Version) -> int:
        if v.is_link:
            return len(self._link_target(v))
        if v.disk is not None:
            return os.lstat(v.disk).st_size
        return self._manifest(v).size

    def _bytes_if_small(self, v: Version) -> bytes | None:
        """The content if it is at most TEXT_LIMIT bytes with no NUL in its first SNIFF bytes."""
        if v.is_link:
            return self._link_target(v)
        if v.disk is not None:
            with open(v.disk, "rb") as f:
                head = f.read(SNIFF)
                if b"\0" in head:
                    return None
                data = head + f.read(TEXT_LIMIT + 1 - len(head))
            return None if len(data) > TEXT_LIMIT else data
        manifest = self._manifest(v)
        if manifest.size > TEXT_LIMIT:
            return None
        buf = bytearray()
        sniffed = False
        for chunk in manifest_chunks(self.repo.chunks, manifest):
            buf += chunk
            if not sniffed and len(buf) >= SNIFF:
                if b"\0" in buf[:SNIFF]:
                    return None
                sniffed = True
        if b"\0" in buf[:SNIFF]:
            return None
        return bytes(buf)

    def text(self, v: Version) -> str | None:
        """The content as text, or None if it is binary or larger than TEXT_LIMIT."""
        data = self._bytes_if_small(v)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None


# -- the diff itself -------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Split on '\\n' only, keeping it; the last line may lack it."""
    if not text:
        return []
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def unified_hunks(old: str, new: str, context: int = 3) -> list[str]:
    """Unified-diff hunks (no ---/+++ header), each line ending in '\\n'."""
    out: list[str] = []
    diff = difflib.unified_diff(_lines(old), _lines(new), n=context)
    for i, line in enumerate(diff):
        if i < 2:
            continue  # difflib's own ---/+++ lines; the renderer writes git-style ones
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n")
            out.append("\\ No newline at end of file\n")
    return out


def _diff_one(
    reader: ContentReader, path: str, old: Version | None, new: Version | None
) -> FileDiff:
    if old is not None and new is not None and old.oid == new.oid:
        return FileDiff(path, old, new, DiffKind.MODE)
    old_text = "" if old is None else reader.text(old)
    new_text = None if old_text is None else ("" if new is None else reader.text(new))
    if old_text is not None and new_text is not None:
        return FileDiff(path, old, new, DiffKind.TEXT, unified_hunks(old_text, new_text))
    return FileDiff(
        path,
        old,
        new,
        DiffKind.BINARY,
        old_size=None if old is None else reader.size(old),
        new_size=None if new is None else reader.size(new),
    )


def file_diffs(repo: Repository, pairs: list[Pair]) -> Iterator[FileDiff]:
    """One :class:`FileDiff` per pair (two for a file <-> symlink change), read lazily."""
    reader = ContentReader(repo)
    for path, old, new in pairs:
        if old is not None and new is not None and old.is_link != new.is_link:
            yield _diff_one(reader, path, old, None)
            yield _diff_one(reader, path, None, new)
        else:
            yield _diff_one(reader, path, old, new)
