"""state.db: the SQLite cache beside the repository (stat cache and chunk index).

Everything in it can be rebuilt: the chunk index from the pack files, the
stat cache by hashing the working tree again. A missing, foreign or damaged
file is set aside and recreated, never fatal; ``rebuilt`` tells the caller
that the chunk index must be rebuilt from the packs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

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


class StateDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rebuilt = False
        try:
            self.conn = self._open()
        except sqlite3.DatabaseError:
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
                raise sqlite3.DatabaseError(f"state.db schema {row[0]} is not {SCHEMA_VERSION}")
        except (sqlite3.DatabaseError, ValueError) as exc:
            conn.close()
            raise sqlite3.DatabaseError(str(exc)) from None
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
