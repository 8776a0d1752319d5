"""state.db: the SQLite cache beside the repository (stat cache and chunk index).

Everything in it can be rebuilt: the chunk index from the pack files, the
stat cache by hashing the working tree again. A missing, foreign or damaged
file is set aside and recreated, never fatal; ``rebuilt`` tells the caller
that the chunk index must be rebuilt from the packs.

Only damage sets the file aside (:func:`is_damage`: SQLite's SQLITE_CORRUPT
or SQLITE_NOTADB, or a schema this version does not know). A full disk
(SQLITE_FULL) is :class:`~vsync.errors.DiskFull` and any other failure to
open it (permissions, I/O errors, a lock) is
:class:`~vsync.errors.EnvironmentFailure`: exit 1, the file left as it is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from vsync.errors import EnvironmentFailure
from vsync.store.space import disk_full, is_disk_full

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    pack INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    compression INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    manifest BLOB NOT NULL,
    hashed_at_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""


class SchemaMismatch(sqlite3.DatabaseError):
    """state.db was written with another schema (or holds what no schema would)."""


def is_damage(exc: BaseException) -> bool:
    """Whether a failure of state.db means its file is damaged (not the disk, not the OS)."""
    if isinstance(exc, SchemaMismatch):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def not_damage(exc: sqlite3.Error, path: Path) -> EnvironmentFailure:
    """The error for a failure of state.db that is not damage (see :func:`is_damage`)."""
    if is_disk_full(exc):
        return disk_full(exc, f"{path.name} (the chunk index and stat cache)", path.parent)
    return EnvironmentFailure(f"cannot use {path} ({exc}); the file was left as it is")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, how: str = "IMMEDIATE") -> Iterator[None]:
    """``BEGIN <how>`` ... ``COMMIT``; on any failure ``ROLLBACK`` if SQLite has not
    already rolled back (it does on SQLITE_FULL), so the first error is the one raised."""
    conn.execute(f"BEGIN {how}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


class StateDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rebuilt = False
        try:
            self.conn = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise not_damage(exc, path) from None
            self._set_aside()
            self.conn = self._open()
            self.rebuilt = True

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
                # A new, empty index: whatever packs exist must be indexed again.
                self.rebuilt = True
            elif int(row[0]) != SCHEMA_VERSION:
                raise SchemaMismatch(f"state.db schema {row[0]} is not {SCHEMA_VERSION}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        except ValueError as exc:
            conn.close()
            raise SchemaMismatch(str(exc)) from None
        return conn

    def _set_aside(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                with contextlib.suppress(OSError):
                    os.replace(src, Path(f"{self.path}.damaged-{stamp}{suffix}"))

    def reset(self) -> None:
        """Throw the database away and start empty (used when it proves damaged)."""
        self.conn.close()
        self._set_aside()
        self.conn = self._open()
        self.rebuilt = True

    def close(self) -> None:
        self.conn.close()
