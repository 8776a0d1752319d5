"""The stat cache: which manifest a working file had when last hashed.

An entry is trusted only when the file's size, mtime, ctime, inode and mode
are unchanged *and* the file was last modified comfortably before it was
hashed. A file modified within ``RACY_NS`` of its hashing (the timestamp
granularity problem git calls "racily clean") is hashed again next time;
2 s covers FAT's timestamps on USB drives.
"""

from __future__ import annotations

import os

from vsync.store.statedb import StateDB, transaction

RACY_NS = 2_000_000_000

Row = tuple[int, int, int, int, int, bytes, int]
StatKey = tuple[int, int, int, int, int]  # what stat_key gives


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def fresh_manifest(row: Row, st: os.stat_result) -> bytes | None:
    """The manifest id of ``row`` if it still describes a file with stat ``st``."""
    size, mtime, ctime, ino, mode, manifest, hashed_at = row
    if (
        size != st.st_size
        or mtime != st.st_mtime_ns
        or ctime != st.st_ctime_ns
        or ino != st.st_ino
        or mode != st.st_mode
    ):
        return None
    if (mtime if mtime > ctime else ctime) >= hashed_at - RACY_NS:
        return None  # racily clean: cannot tell a same-tick edit apart
    return manifest


class StatCache:
    def __init__(self, db: StateDB) -> None:
        self.db = db
        self._rows: dict[str, Row] | None = None
        self._pending: dict[str, Row | None] = {}

    def _load(self) -> dict[str, Row]:
        if self._rows is None:
            rows = self.db.conn.execute(
                "SELECT path, size, mtime_ns, ctime_ns, inode, mode, manifest, hashed_at_ns"
                " FROM files"
            ).fetchall()
            self._rows = {r[0]: tuple(r[1:]) for r in rows}
        return self._rows

    def lookup(self, path: str, st: os.stat_result) -> bytes | None:
        row = self._load().get(path)
        if row is None:
            return None
        return fresh_manifest(row, st)

    def rows(self) -> dict[str, Row]:
        """Every entry by path (read-only: change them through record/forget)."""
        return self._load()

    def record(self, path: str, st: os.stat_result, manifest: bytes, hashed_at_ns: int) -> None:
        row: Row = (*stat_key(st), manifest, hashed_at_ns)
        self._load()[path] = row
        self._pending[path] = row

    def forget(self, path: str) -> None:
        if self._load().pop(path, None) is not None:
            self._pending[path] = None

    def paths(self) -> list[str]:
        return list(self._load())

    def flush(self) -> None:
        if not self._pending:
            return
        conn = self.db.conn
        gone = [(path,) for path, row in self._pending.items() if row is None]
        rows = [(path, *row) for path, row in self._pending.items() if row is not None]
        with transaction(conn):
            if gone:
                conn.executemany("DELETE FROM files WHERE path=?", gone)
            if rows:
                conn.executemany(
                    "INSERT OR REPLACE INTO files(path, size, mtime_ns, ctime_ns, inode, mode,"
                    " manifest, hashed_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        self._pending.clear()
