"""Which working files a fetch fills while it receives: clone and fast-forward pull.

Once the received git pack is validated (:meth:`IncomingPack.validate`) and
before any chunk is asked for, :class:`FolderFill` works out the files the
command will write afterwards, and hands them to a
:class:`vsync.model.prefill.Prefill`, which fills them as their chunks arrive:

- a clone (the folder is empty): every regular file of the new commit;
- a pull whose branch will fast-forward to the new commit (the branch is
  unset, or an ancestor of it): every regular file that differs between the
  branch and the new commit and has nothing at its path that the writer could
  rebuild it from (:mod:`vsync.model.rebuild` copies the ranges an old copy
  shares, which costs less than receiving them).

Files the holdback keeps out of the folder are left out. Anything else (a
merge, a path whose parent is not a folder) is written by the folder writer
after the fetch, as before: what this plans is only ever a head start, and the
folder writer's own checks decide every write.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from vsync.errors import DamagedRepository, UnsafePath
from vsync.model.folder_scan import MODE_EXEC, MODE_FILE
from vsync.model.gitdb import MODE_TREE, Blob, Commit, Tree
from vsync.model.manifest import Manifest
from vsync.model.paths import check_folder_names
from vsync.model.prefill import STREAM_MIN, FillFile, Prefill
from vsync.model.rebuild import REUSE_MIN
from vsync.model.repository import Repository
from vsync.model.snapshot import FlatMap, check_received_tree, flatten_commit
from vsync.ops.history_graph import is_ancestor
from vsync.sync.transfer import IncomingPack


class FolderFill:
    """Called by :func:`vsync.sync.client.fetch` with the validated pack and the new
    tip; keeps the :class:`Prefill` it makes for the command to complete and hand
    to the folder writer, and to discard at the end."""

    def __init__(self, repo: Repository, local: bytes | None, clone: bool = False) -> None:
        self.repo = repo
        self.local = local
        self.clone = clone
        self.prefill: Prefill | None = None

    def __call__(self, incoming: IncomingPack, new: bytes) -> Prefill | None:
        root = self.repo.root
        if root is None or not self._fast_forward(incoming, new):
            return None
        files = list(self._files(incoming, new))
        if not files:
            return None
        self.prefill = Prefill(self.repo.control, root, files, lambda f: _manifest(incoming, f))
        return self.prefill if len(self.prefill) else None

    def discard(self) -> None:
        if self.prefill is not None:
            self.prefill.discard()
            self.prefill = None

    # -- planning ------------------------------------------------------------------------

    def _fast_forward(self, incoming: IncomingPack, new: bytes) -> bool:
        """Whether the branch (``local``) is an ancestor of ``new``, whose newest
        commits are in the received pack."""
        if self.local is None:
            return True
        seen: set[bytes] = set()
        todo = [new]
        while todo:
            cid = todo.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if cid == self.local:
                return True
            if self.repo.gitdb.has(cid):
                if is_ancestor(self.repo, self.local, cid):
                    return True
                continue
            obj = incoming.find(cid)
            if isinstance(obj, Commit):
                todo.extend(obj.parents)
        return False

    def _files(self, incoming: IncomingPack, new: bytes) -> Iterator[FillFile]:
        root = self.repo.root
        assert root is not None
        before: FlatMap = {} if self.clone else flatten_commit(self.repo.gitdb, self.local)
        holds = self.repo.holds
        for path, mode, oid in _new_files(incoming, new):
            if before.get(path) == (mode, oid) or holds.decide(path, mode) is None:
                continue
            size = _manifest(incoming, FillFile(path, root, oid, 0)).size
            if size < STREAM_MIN:
                continue
            disk = root.joinpath(*path.split("/"))
            if not self.clone and _rebuildable(disk):
                continue
            yield FillFile(path, disk, oid, size)


def _manifest(incoming: IncomingPack, f: FillFile) -> Manifest:
    """``f``'s manifest, from the received pack or the store (validated on arrival)."""
    blob = incoming.find(f.oid)
    if not isinstance(blob, Blob):
        raise DamagedRepository(f"the manifest of '{f.path}' is missing")
    return Manifest.from_bytes(blob.data, f.path)


def _rebuildable(disk: os.PathLike[str]) -> bool:
    """Whether something at ``disk`` might serve the folder writer to rebuild from."""
    try:
        st = os.lstat(disk)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not stat.S_ISREG(st.st_mode) or st.st_size >= REUSE_MIN


def _new_files(incoming: IncomingPack, new: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(path, mode, manifest id) of every regular file of commit ``new``, in path
    order, read from the received pack or the store (validated on arrival)."""
    commit = incoming.find(new)
    if not isinstance(commit, Commit):
        return
    out: list[tuple[str, int, bytes]] = []
    stack = [(commit.tree, "")]
    while stack:
        tid, folder = stack.pop()
        tree = incoming.find(tid)
        if not isinstance(tree, Tree):
            return
        try:
            names = check_received_tree(tree)
            check_folder_names(names, folder)
        except UnsafePath:
            return  # refused with its message when the folder writer gets there
        head = folder + "/" if folder else ""
        for name, (_raw, mode, oid) in zip(names, tree.items, strict=True):
            if mode == MODE_TREE:
                stack.append((oid, head + name))
            elif mode in (MODE_FILE, MODE_EXEC):
                out.append((head + name, mode, oid))
    out.sort()
    yield from out
