"""An object store on a folder: a path remote, a USB drive.

Each object is a file at its name. Writes are whole or nothing: a temporary
file ``.tmp-<hex>`` in the target's folder, fsync, then a hard link to the
name (which fails if the name exists: write-if-absent is atomic even against
another process) or, where the file system has no hard links (FAT), a
rename under the folder's lock. Compare-and-swap holds an flock on
``.lock-<name>`` beside the object while it compares and renames. Names
beginning with ``.`` are never objects and are skipped by :meth:`list`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from vsync.errors import EnvironmentFailure, UsageError
from vsync.store import faults
from vsync.store.chunkstore import fsync_dir
from vsync.sync.objstore import ObjectMissing, check_name

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


class FolderStore:
    # Packs a push stores at once through this one store (vsync/sync/crypt/transfer.py,
    # gitparts.py): two, so that one pack's write overlaps the other's fsync, as the
    # local pack writer's I/O and sealer threads overlap them; with one, each 16 MiB
    # write waited for the fsync before it. Each adds one sealed pack to what a push
    # holds. Safe from several threads: each write has its own temporary file and
    # lands by an atomic link (or a rename under the folder's lock).
    parallel_writes = 2

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, path: Path, objects: list[tuple[str, bytes]]) -> FolderStore:
        """A new store at ``path`` (absent or an empty folder) holding ``objects``,
        written in order (the last one, the marker, last of all).

        Built in ``PATH.init-tmp`` and renamed into place, so a half-made store is
        never found at ``path``.
        """
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{path} already exists and is not an empty folder")
        tmp = path.with_name(path.name + ".init-tmp")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            store = cls(tmp)
            for name, data in objects:
                store.write_if_absent(name, data)
            faults.point("objstore-created")
            if path.exists():
                path.rmdir()
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except OSError as exc:
            raise EnvironmentFailure(f"could not create {path}: {exc.strerror}") from None
        return cls(path)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def list(self, prefix: str) -> list[str]:
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if head:
            check_name(head)
        start = self.root / head if head else self.root
        out = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for fname in filenames:
                if fname.startswith("."):
                    continue
                name = fname if rel == "." else f"{rel}/{fname}"
                if name.startswith(prefix):
                    out.append(name)
        return sorted(out)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except IsADirectoryError:
            raise ObjectMissing(name) from None

    def _temp(self, path: Path, data: bytes | bytearray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def write_if_absent(self, name: str, data: bytes | bytearray) -> bool:
        path = self._path(name)
        if path.exists():
            return False
        tmp = self._temp(path, data)
        try:
            faults.point("objstore-before-link")
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                with self._locked(path):
                    if path.exists():
                        return False
                    os.rename(tmp, path)
            fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise EnvironmentFailure(f"could not write {path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".lock-{path.name}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def compare_and_swap(self, name: str, old: bytes | None, new: bytes) -> bool:
        path = self._path(name)
        with self._locked(path):
            try:
                current: bytes | None = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current != old:
                return False
            tmp = self._temp(path, new)
            faults.point("objstore-before-swap")
            os.replace(tmp, path)
            fsync_dir(path.parent)
            return True

    def delete(self, name: str) -> bool:
        path = self._path(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True
