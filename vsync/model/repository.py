"""A vsync repository: where its parts live, opening, creating and locking it.

Layout (docs/format.md)::

    <root>/.vsync/           (a bare repository is this directory itself)
        config               git-config syntax: format version, chunking, remotes
        git/                 bare git repository (dulwich): commits, trees, refs
        chunks/              chunk packs
        state.db             SQLite cache: stat cache, chunk index
        hooks/               executables run around commit, push, merge
        lock                 flock target; its exclusive holder's pid and command
        lockfiles.flock      held by every writer of a git or config lock file
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vsync.errors import NotARepository, UsageError
from vsync.model.config import RepoConfig
from vsync.model.paths import CONTROL_NAME, CONTROL_PARTS

# The parts below are imported when first used: a clean ``vsync status`` opens
# the repository without loading the git database, the chunk store or SQLite.
if TYPE_CHECKING:
    from vsync.model.gitdb import GitDB
    from vsync.model.holdback import Holds
    from vsync.model.ingest import Ingester
    from vsync.store.chunkstore import ChunkStore
    from vsync.store.statedb import StateDB

BRANCH = b"refs/heads/main"
HELD_FILE = "held"  # paths held back from .git folders (vsync.model.holdback)
MERGE_STATE = "merge/state"  # the merge in progress (vsync.ops.merge.state), under the control


def hook_samples_dir() -> Path | None:
    """The sample hooks shipped with vsync (package data, or the source tree)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "hook_samples", here.parent / "hooks"):
        if candidate.is_dir():
            return candidate
    return None


def is_control_dir(path: Path) -> bool:
    """A folder vsync opens as a repository: a ``config`` file, ``git/`` and ``chunks/``.

    :func:`vsync.model.paths.control_shaped` is the superset of this test used
    to refuse trees: no folder written from a tree ever passes it.
    """
    config, git, chunks = (path / part for part in CONTROL_PARTS)
    return config.is_file() and git.is_dir() and chunks.is_dir()


def inside_working_folder(path: Path) -> bool:
    """True if ``path`` or a folder above it holds a ``.vsync`` entry of any kind."""
    return any(os.path.lexists(folder / CONTROL_NAME) for folder in (path, *path.parents))


class Repository:
    def __init__(self, control: Path, root: Path | None) -> None:
        self.control = control
        self.root = root
        self.config = RepoConfig(control / "config")
        self.config.check_format()
        self._gitdb: GitDB | None = None
        self._db: StateDB | None = None
        self._chunks: ChunkStore | None = None
        self._holds: Holds | None = None
        self._lock_depth = 0
        self._lock_exclusive = False

    # -- construction ------------------------------------------------------------

    @classmethod
    def init(cls, path: Path, bare: bool = False) -> Repository:
        from vsync.model.config import DEFAULT_COMPRESSION_LEVEL, write_new_config
        from vsync.model.gitdb import GitDB
        from vsync.store.chunker import ChunkerParams
        from vsync.store.chunkstore import fsync_dir

        path = path.absolute()
        control = path if bare else path / CONTROL_NAME
        if bare and path.exists() and any(path.iterdir()):
            raise UsageError(
                f"{path} exists and is not empty; a bare repository needs a new folder"
            )
        if not bare and control.exists():
            raise UsageError(f"{path} is already a vsync repository")
        if not bare and path.exists() and not path.is_dir():
            raise UsageError(f"{path} is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        import shutil  # (here: opening a repository never needs it)

        staging = control.with_name(control.name + ".init-tmp")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        (staging / "chunks").mkdir()
        (staging / "hooks").mkdir()
        GitDB.init(staging / "git", BRANCH)
        write_new_config(staging / "config", bare, ChunkerParams(), DEFAULT_COMPRESSION_LEVEL)
        samples = hook_samples_dir()
        if samples is not None:
            for sample in sorted(samples.iterdir()):
                if sample.is_file() and not sample.name.startswith("."):
                    dest = staging / "hooks" / (sample.name + ".sample")
                    shutil.copyfile(sample, dest)
                    dest.chmod(0o755)
        if bare:
            for child in staging.iterdir():
                os.replace(child, path / child.name)
            staging.rmdir()
        else:
            os.replace(staging, control)
        fsync_dir(path)
        return cls(control, None if bare else path)

    @classmethod
    def discover(cls, start: Path | None = None) -> Repository:
        """The repository a command started in ``start`` (the current folder) works on.

        Searching upward, the first folder holding a ``.vsync`` control folder
        is the working folder. A bare repository is never taken on the way up,
        and is taken here only when it is ``start`` itself and ``start`` is not
        inside a working folder (where it is tracked content that came from
        anywhere, maybe a peer: its hooks and remote commands must not run).
        git's ``safe.bareRepository`` is the model. Elsewhere a bare
        repository is opened only when named (:meth:`open_path`).
        """
        here = (start or Path.cwd()).absolute()
        for candidate in (here, *here.parents):
            control = candidate / CONTROL_NAME
            if is_control_dir(control):
                return cls(control, candidate)
        if (
            is_control_dir(here)
            and not inside_working_folder(here)
            and RepoConfig(here / "config").bare
        ):
            return cls(here, None)
        raise NotARepository(str(here))

    @classmethod
    def open_path(cls, path: Path) -> Repository:
        """Open the repository at exactly ``path`` (a bare repo or a working folder).

        For paths the user names (``serve --stdio PATH``, a path remote, a
        clone's source): a bare repository is taken wherever it is.
        """
        path = path.absolute()
        if is_control_dir(path / CONTROL_NAME):
            return cls(path / CONTROL_NAME, path)
        if is_control_dir(path):
            return cls(path, None)
        raise NotARepository(str(path))

    # -- parts --------------------------------------------------------------------

    @property
    def bare(self) -> bool:
        return self.root is None

    def require_worktree(self) -> Path:
        if self.root is None:
            raise UsageError("this is a bare repository; it has no working folder")
        return self.root

    @property
    def gitdb(self) -> GitDB:
        """The git objects, refs and reflogs (every git access goes through it)."""
        if self._gitdb is None:
            from vsync.model.gitdb import GitDB

            self._gitdb = GitDB.open(self.control / "git")
        return self._gitdb

    @property
    def db(self) -> StateDB:
        if self._db is None:
            from vsync.store.statedb import StateDB

            self._db = StateDB(self.control / "state.db")
        return self._db

    @property
    def chunks(self) -> ChunkStore:
        if self._chunks is None:
            from vsync.store.chunkstore import ChunkStore

            store = ChunkStore(self.control / "chunks", self.db, self.config.compression_level())
            if self.db.rebuilt:
                store.rebuild_index()
                self.db.rebuilt = False
            else:
                store.reconcile()
            self._chunks = store
        return self._chunks

    def swap_ref(self, name: bytes, old: bytes | None, new: bytes | None, message: str) -> bool:
        """:meth:`GitDB.swap_ref` with this user's identity and ``message`` in the reflog."""
        committer = self.config.identity().git_ident()
        return self.gitdb.swap_ref(name, old, new, committer=committer, message=message.encode())

    def ingester(self) -> Ingester:
        """An ingest pipeline with this repository's chunking and compression (close it)."""
        from vsync.model.ingest import Ingester

        return Ingester(self.config.chunker_params(), self.config.compression_level())

    @property
    def holds(self) -> Holds:
        """Paths under tracked ``.git`` folders held back (:mod:`vsync.model.holdback`)."""
        if self._holds is None:
            from vsync.model.holdback import Holds

            self._holds = Holds(self.control, self.config.trust_git_folders)
        return self._holds

    @property
    def hooks_dir(self) -> Path:
        return self.control / "hooks"

    def reset_state_db(self) -> None:
        """Discard a damaged state.db and rebuild the chunk index from the packs."""
        if self._chunks is not None:
            self._chunks.close_files()
        self.db.reset()
        self._chunks = None
        _ = self.chunks

    # -- refs ---------------------------------------------------------------------

    def head(self) -> bytes | None:
        """The commit id the branch points at, or None before the first commit."""
        return self.gitdb.ref(BRANCH)

    # -- locking --------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, exclusive: bool = True) -> Iterator[None]:
        """The repository lock: shared for commits, exclusive for gc and for
        moving refs together with the working folder. Re-entrant within one
        process (a nested shared request inside an exclusive hold is free)."""
        if self._lock_depth:
            if exclusive and not self._lock_exclusive:
                raise RuntimeError("cannot upgrade a shared repository lock to exclusive")
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        from vsync.model.lock import LOCK_TIMEOUT, RepoLock
        from vsync.model.materialize import remove_leftover_temps
        from vsync.store import faults

        with RepoLock(self.control / "lock", exclusive, LOCK_TIMEOUT):
            self._lock_depth, self._lock_exclusive = 1, exclusive
            faults.point("lock-taken")
            try:
                if self.root is not None:  # no folder writer is at work while we hold it
                    remove_leftover_temps(self.control, self.root)
                self.chunks.recover_temp_packs()
                yield
            finally:
                self._lock_depth, self._lock_exclusive = 0, False

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.close_files()
        if self._db is not None:
            self._db.close()
        if self._gitdb is not None:
            self._gitdb.close()
        self._gitdb = self._db = self._chunks = None
        self._holds = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
