"""The stat cache: which object id a working file or symlink had when last read.

It lives in one flat file, ``.vsync/statcache`` (docs/format.md, "The stat
cache"), read in one go as git reads its index: a fixed header (magic,
version, entry count, CRC-32 of the body, the *clean stamp*), then one
fixed-size record per entry, then the entries' paths. Nothing per entry is
built at load beyond a path -> record-number map; records are unpacked when
asked for. Written whole: a temporary file in ``.vsync``, renamed over it (no fsync:
see :func:`write_file`).

An entry is trusted only when the file's size, mtime, ctime, inode and mode
are unchanged *and* the file was last modified comfortably before it was
hashed. A file modified within the racy window of its hashing (the timestamp
granularity problem git calls "racily clean") is hashed again next time: 100 ms
on a local file system with nanosecond stamps, else ``RACY_NS`` (2 s, FAT's
timestamps on USB drives; :mod:`vsync.model.racy_window` says which). Such an
entry is *smudged* when recorded (its mode set to 0, which no file has), as git
smudges racy index entries, so that trusting a record is one comparison of its
stat fields.

The clean stamp names the commit and tree the entries were clean against:
every entry's object id, and nothing else, makes that tree. A status that
finds the folder exactly as the entries describe and the branch still at the
stamp's commit is clean without reading a git object
(:mod:`vsync.model.clean_walk`). Any change to the entries drops the stamp.

The *monitor mark* (version 2) is a running watcher's token
(:mod:`vsync.model.fsmonitor`) taken before the entries were last refreshed:
every path the watcher does not report as changed since that token is as its
entry (or the absence of one) describes. Recording a true stat keeps that
promise, so a write keeps the mark it loaded unless told another
(:meth:`StatCache.set_mark`); a write laid over a file another process
rewrote drops it, as it drops the stamp. The mark may also name a commit
whose tree the folder was exactly at that token (a fact about that moment,
which no later change undoes): the folder then differs from that commit only
at the paths the watcher reports.

The cache is disposable: a file that is missing, foreign, of another version
or whose CRC does not match is ignored (the files are hashed again and the
cache rewritten). The first time a repository made before this file is
opened, the ``files`` table of state.db is read into it (that table is not
used afterwards and is emptied).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from binascii import hexlify, unhexlify
from bisect import bisect_left
from pathlib import Path
from typing import NamedTuple

from vsync.model.racy_window import folder_window_ns, window_for

RACY_NS = 2_000_000_000

CACHE_FILE = "statcache"
MAGIC = b"VSSC"
VERSION = 2
# magic, version, entry count, CRC-32 of the body, stamp commit, stamp tree, ignore fingerprint
HEADER_V1 = struct.Struct("<4sIII20s20s16s")
# ... then the monitor mark: the watcher instance (16 bytes), its change number, and
# the commit the folder was exactly then (raw id; zeros: none)
HEADER = struct.Struct("<4sIII20s20s16s16sQ20s")
NO_INSTANCE = bytes(16)
# size, mtime_ns, ctime_ns, inode, st_mode: what stat_key gives
KEY = struct.Struct("<QqqQI")
# the key, then hashed_at_ns, then the 20-byte object id
RECORD = struct.Struct("<QqqQIq20s")
ID_AT = 44  # where the object id starts in a record
NO_ID = bytes(20)
SMUDGED = 0  # the mode of a racy entry: no file has it, so it never matches

# RECORD's fields, the object id in hex (as ids are everywhere else in vsync)
Row = tuple[int, int, int, int, int, int, bytes]
StatKey = tuple[int, int, int, int, int]  # what stat_key gives
Stamp = tuple[bytes, bytes, bytes]  # (commit id, tree id, ignore fingerprint), raw
MonitorToken = tuple[bytes, int]  # (watcher instance, 16 raw bytes; change number)
Mark = tuple[bytes, int, bytes]  # a MonitorToken's two, then a raw commit id or NO_ID


class FileStat(NamedTuple):
    """What vsync keeps of an lstat while it works on many files (an ``os.stat_result``
    holds some twenty fields, several as objects: about 600 bytes a file)."""

    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int
    st_mode: int


Stat = os.stat_result | FileStat


def file_stat(st: os.stat_result) -> FileStat:
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def stat_key(st: Stat) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def is_racy(st_mtime_ns: int, st_ctime_ns: int, hashed_at_ns: int, folder_ns: int) -> bool:
    """Whether a file with these times, hashed at ``hashed_at_ns``, may have changed
    within the same timestamp tick afterwards (git's "racily clean"); ``folder_ns``
    is :func:`racy_ns` of its working folder."""
    window = window_for(st_mtime_ns, st_ctime_ns, folder_ns)
    return max(st_mtime_ns, st_ctime_ns) >= hashed_at_ns - window


def racy_ns(root: Path | str) -> int:
    """The racy window of the working folder at ``root``: never more than ``RACY_NS``
    (which tests may set to 0 to trust entries at once)."""
    return min(RACY_NS, folder_window_ns(str(root)))


class CacheFile:
    """A parsed ``statcache``: the raw records and a path -> record number map."""

    __slots__ = ("index", "mark", "names", "records", "stamp")

    def __init__(
        self,
        index: dict[str, int],
        records: bytes,
        stamp: Stamp | None,
        mark: Mark | None = None,
        names: bytes = b"",
    ) -> None:
        self.index = index
        self.records = records
        self.stamp = stamp
        self.mark = mark
        self.names = names  # the paths as on disk, each followed by a NUL

    def row(self, i: int) -> Row:
        size, mtime, ctime, ino, mode, hashed_at, oid = RECORD.unpack_from(
            self.records, i * RECORD.size
        )
        return (size, mtime, ctime, ino, mode, hashed_at, hexlify(oid))

    def key(self, i: int) -> StatKey:
        return KEY.unpack_from(self.records, i * RECORD.size)


EMPTY = CacheFile({}, b"", None)


def parse_header(
    data: bytes,
) -> tuple[int, int, int, Stamp | None, Mark | None] | None:
    """(header size, entry count, body CRC, clean stamp, monitor mark) of a cache file
    beginning with ``data`` (version 1 or 2), or None if it is not one."""
    if len(data) < HEADER_V1.size:
        return None
    magic, version, count, crc, commit, tree, ignore_fp = HEADER_V1.unpack_from(data)
    if magic != MAGIC or version not in (1, VERSION):
        return None
    mark: Mark | None = None
    size = HEADER_V1.size
    if version == VERSION:
        if len(data) < HEADER.size:
            return None
        instance, seq, clean = HEADER.unpack_from(data)[7:]
        size = HEADER.size
        if instance != NO_INSTANCE:
            mark = (instance, seq, clean)
    stamp = None if commit == NO_ID else (commit, tree, ignore_fp)
    return size, count, crc, stamp, mark


def read_header(path: Path) -> tuple[Stamp | None, Mark | None, int] | None:
    """The clean stamp, monitor mark and entry count of the cache file at ``path``, read
    without its body (None: missing, unreadable or not a cache file)."""
    try:
        with open(path, "rb") as f:
            data = f.read(HEADER.size)
    except OSError:
        return None
    head = parse_header(data)
    return None if head is None else (head[3], head[4], head[1])


def parse(data: bytes) -> CacheFile | None:
    """The cache held by ``data``, or None if it is not a whole cache of this version."""
    head = parse_header(data)
    if head is None:
        return None
    head_size, count, crc, stamp, mark = head
    body = memoryview(data)[head_size:]
    if zlib.crc32(body) != crc:
        return None
    rec_end = head_size + count * RECORD.size
    if len(data) < rec_end:
        return None
    blob = data[rec_end:]
    try:
        names = blob.decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None
    if len(names) != count + 1 or names[-1] != "":
        return None
    names.pop()
    index = dict(zip(names, range(count), strict=True))
    if len(index) != count:
        return None
    return CacheFile(index, data[head_size:rec_end], stamp, mark, blob)


class RawCache(NamedTuple):
    """A cache file's parts as they are on disk, nothing built per entry: for a reader
    that walks the entries in their (path) order, as :mod:`vsync.model.folder_tree` does."""

    records: bytes  # ``entries`` RECORDs
    names: bytes  # ``entries`` paths, each followed by a NUL, in code point order
    entries: int
    stamp: Stamp | None


def parse_raw(data: bytes) -> RawCache | None:
    """:func:`parse` without the path map (the same checks but the paths' uniqueness,
    which a reader in path order sees as paths out of order)."""
    head = parse_header(data)
    if head is None:
        return None
    head_size, count, crc, stamp, _mark = head
    if zlib.crc32(memoryview(data)[head_size:]) != crc:
        return None
    rec_end = head_size + count * RECORD.size
    if len(data) < rec_end:
        return None
    names = data[rec_end:]
    if names.count(b"\0") != count or (count and not names.endswith(b"\0")):
        return None
    try:
        names.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return RawCache(data[head_size:rec_end], names, count, stamp)


def read_raw(path: Path) -> tuple[RawCache | None, tuple[int, int, int] | None]:
    """(the cache at ``path`` as :class:`RawCache`, or None when it is missing (or
    unusable: then an empty one), its file's identity), as :func:`read_file`."""
    data, ident = _read_whole(path)
    if data is None:
        return None, None
    parsed = parse_raw(data)
    return (RawCache(b"", b"", 0, None) if parsed is None else parsed), ident


def _read_whole(path: Path) -> tuple[bytes | None, tuple[int, int, int] | None]:
    """(the bytes of the file at ``path``, its identity); (None, None) when it is
    missing; (b"", None) when it cannot be read (never fatal: the cache starts empty)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return None, None
    except OSError:
        return b"", None


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def write_raw(
    control: Path,
    records: bytes | bytearray,
    names: bytes | bytearray,
    count: int,
    stamp: Stamp | None,
    mark: Mark | None = None,
) -> None:
    """Write a whole cache file from its parts (records and paths in path order)."""
    crc = zlib.crc32(names, zlib.crc32(records))
    commit, tree, ignore_fp = stamp if stamp is not None else (NO_ID, NO_ID, bytes(16))
    instance, seq, clean = mark if mark is not None else (NO_INSTANCE, 0, NO_ID)
    header = HEADER.pack(MAGIC, VERSION, count, crc, commit, tree, ignore_fp, instance, seq, clean)
    write_file(control / CACHE_FILE, [header, records, names])
    _remove_abandoned_temps(control)


def read_file(path: Path) -> tuple[CacheFile | None, tuple[int, int, int] | None]:
    """(the cache at ``path`` or None when it is missing or unusable, its file's identity)."""
    data, ident = _read_whole(path)
    if data is None:
        return None, None
    parsed = parse(data)
    return (EMPTY if parsed is None else parsed), ident


def encode(
    base: CacheFile,
    pending: dict[str, Row | None],
    stamp: Stamp | None,
    mark: Mark | None = None,
) -> list[bytes | memoryview]:
    """The parts of a cache file, to be written one after the other: ``base``'s entries
    with ``pending`` laid over them (None: forgotten), sorted by path (code point order,
    which is UTF-8 byte order).

    The runs of unchanged entries are slices of ``base``'s own records and paths, so
    the cost in memory and time follows the changes, not the entries (a commit of a
    few files in a folder of a million rewrites the file without building an object
    per entry). The paths of a run are found by one forward search in ``base``'s path
    bytes: both lists are sorted and the search never goes back. A base whose paths
    are out of order (never written by this code) is laid out again whole."""
    try:
        return _encode_spliced(base, pending, stamp, mark)
    except _OutOfOrder:
        rows: dict[str, Row | None] = {path: base.row(i) for path, i in base.index.items()}
        rows.update(pending)
        return _encode_spliced(EMPTY, rows, stamp, mark)


class _OutOfOrder(Exception):
    """A cache file's paths are not in code point order."""


def _encode_spliced(
    base: CacheFile,
    pending: dict[str, Row | None],
    stamp: Stamp | None,
    mark: Mark | None,
) -> list[bytes | memoryview]:
    records = memoryview(base.records)
    names = base.names
    size = RECORD.size
    keys: list[str] | None = None  # base's paths in order, for a new path's place
    rec_parts: list[bytes | memoryview] = []
    name_parts: list[bytes | memoryview] = []
    count = len(base.index)
    done = 0  # base's entries before this one are laid out
    at = 0  # where entry ``done``'s path starts in ``names``

    def path_start(k: int) -> int:
        """Where base entry ``k`` (>= ``done``) starts in ``names``."""
        if k == done:
            return at
        if k == len(base.index):
            return len(names)
        assert keys is not None
        found = names.find(b"\0" + keys[k].encode("utf-8") + b"\0", at - 1 if at else 0)
        if found < 0:
            raise _OutOfOrder
        return found + 1

    for path in sorted(pending):
        i = base.index.get(path)
        if keys is None:
            keys = list(base.index)
        k = bisect_left(keys, path) if i is None else i
        if k < done:  # behind what is laid out already: only an unsorted base does that
            raise _OutOfOrder
        start = path_start(k) if k > done else at
        if k > done:
            rec_parts.append(records[done * size : k * size])
            name_parts.append(memoryview(names)[at:start])
        done, at = k, start
        encoded = path.encode("utf-8")
        if i is not None:  # laid over or forgotten: skip the base's entry
            count -= 1
            done, at = k + 1, start + len(encoded) + 1
        row = pending[path]
        if row is not None:
            rec_parts.append(RECORD.pack(*row[:6], unhexlify(row[6])))
            name_parts.append(encoded + b"\0")
            count += 1
    if done < len(base.index):
        rec_parts.append(records[done * size :])
        name_parts.append(memoryview(names)[at:])
    crc = 0
    for part in rec_parts + name_parts:
        crc = zlib.crc32(part, crc)
    commit, tree, ignore_fp = stamp if stamp is not None else (NO_ID, NO_ID, bytes(16))
    instance, seq, clean = mark if mark is not None else (NO_INSTANCE, 0, NO_ID)
    header = HEADER.pack(MAGIC, VERSION, count, crc, commit, tree, ignore_fp, instance, seq, clean)
    return [header, *rec_parts, *name_parts]


def write_file(
    path: Path, data: bytes | list[bytes | bytearray] | list[bytes | memoryview]
) -> tuple[int, int, int]:
    """Write ``data`` (or its parts, one after the other) as the cache file: a temporary
    file beside it, renamed over it. Returns the identity of the file written (as
    :func:`read_file` gives it).

    No fsync: the cache is disposable. After a power cut the file is the one before
    (whose stamp and mark describe an earlier, still true state: a stamp names the
    commit it was clean against, and the branch moved on with an fsynced ref) or this
    one, or a torn one whose CRC fails (ignored: the files are hashed again). An fsync
    here cost a commit 5-10 ms for 50,000 files, 100 ms and more at a million."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            for part in [data] if isinstance(data, bytes) else data:
                f.write(part)
            f.flush()
            st = os.fstat(f.fileno())
        os.replace(tmp, path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_abandoned_temps(control: Path) -> None:
    """Remove ``statcache.tmp-<pid>`` files whose writer is gone (killed mid-write)."""
    prefix = CACHE_FILE + ".tmp-"
    with contextlib.suppress(OSError):
        for name in os.listdir(control):
            if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
                continue
            pid = int(name[len(prefix) :])
            try:
                os.kill(pid, 0)
                continue  # still running (or another user's): its own to finish
            except ProcessLookupError:
                pass
            except OSError:
                continue
            with contextlib.suppress(OSError):
                os.unlink(control / name)


def _legacy_rows(control: Path) -> list[tuple[str, Row]]:
    """The stat cache a repository made before the flat file keeps in state.db."""
    db = control / "state.db"
    if not db.exists():
        return []
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute(
                "SELECT path, size, mtime_ns, ctime_ns, inode, mode, manifest, hashed_at_ns"
                " FROM files"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # no table, damaged, locked: the cache starts empty
    out: list[tuple[str, Row]] = []
    window = racy_ns(control.parent)
    for path, size, mtime, ctime, ino, mode, manifest, hashed_at in rows:
        if not isinstance(path, str) or not isinstance(manifest, bytes) or "\0" in path:
            continue
        if len(manifest) != 40:
            continue
        try:
            path.encode("utf-8")
            RECORD.pack(size, mtime, ctime, ino, mode, hashed_at, unhexlify(manifest))
        except (ValueError, TypeError, struct.error, UnicodeEncodeError):
            continue  # not a row this version wrote: left out (the file is read again)
        if is_racy(mtime, ctime, hashed_at, window):
            mode = SMUDGED
        out.append((path, (size, mtime, ctime, ino, mode, hashed_at, manifest)))
    return out


def has_legacy_rows(control: Path) -> bool:
    """Whether state.db still holds a stat cache of a repository made before this file
    (the first :class:`StatCache` flush takes it over)."""
    return bool(_legacy_rows(control))


def _empty_legacy_table(control: Path) -> None:
    import sqlite3

    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(control / "state.db", timeout=5.0)
        try:
            conn.execute("DELETE FROM files")
            conn.commit()
        finally:
            conn.close()


class StatCache:
    """The stat cache of one repository's working folder (see the module docstring).

    Changes are kept in memory until :meth:`flush`. If another process rewrote
    the file meanwhile, the flush lays these changes over that newer file (as
    row updates to a database would be) and drops the clean stamp.
    """

    def __init__(self, control: Path) -> None:
        self.path = control / CACHE_FILE
        self._control = control
        self._base: CacheFile | None = None
        self._ident: tuple[int, int, int] | None = None
        self._migrated = False
        self._pending: dict[str, Row | None] = {}
        self._stamp_changed = False
        self._stamp: Stamp | None = None
        self._mark: Mark | None = None
        self._mark_changed = False
        self._racy_ns: int | None = None

    # -- reading ---------------------------------------------------------------------

    def _load(self) -> CacheFile:
        if self._base is None:
            base, self._ident = read_file(self.path)
            if base is None:
                legacy = _legacy_rows(self._control)
                self._migrated = True
                base = EMPTY
                for path, row in legacy:
                    self._pending[path] = row
            self._base = base
            self._stamp = base.stamp
            if not self._mark_changed:
                self._mark = base.mark
        return self._base

    @property
    def stamp(self) -> Stamp | None:
        """The clean stamp, or None (see the module docstring)."""
        self._load()
        return None if self._pending else self._stamp

    @property
    def mark(self) -> Mark | None:
        """The monitor mark (see the module docstring), or None."""
        self._load()
        return self._mark

    def base(self) -> CacheFile:
        """The file as loaded (changes not laid over): for :mod:`vsync.model.clean_walk`."""
        return self._load()

    def get(self, path: str) -> Row | None:
        base = self._load()
        if path in self._pending:
            return self._pending[path]
        i = base.index.get(path)
        return None if i is None else base.row(i)

    def lookup(self, path: str, st: Stat) -> bytes | None:
        """The object id recorded for ``path`` if it still describes a file with stat ``st``."""
        base = self._load()
        if path not in self._pending:
            i = base.index.get(path)
            if i is None:
                return None
            at = i * RECORD.size
            raw = base.records
            if KEY.unpack_from(raw, at) != (
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_ino,
                st.st_mode,
            ):
                return None
            return hexlify(raw[at + ID_AT : at + RECORD.size])
        row = self._pending[path]
        if row is None or row[:5] != stat_key(st):
            return None
        return row[6]

    def from_stamp(self, path: str) -> bool:
        """Whether ``path``'s entry is one the loaded file's clean stamp covers (its
        object id is then in the stamp's tree)."""
        base = self._load()
        return base.stamp is not None and path not in self._pending and path in base.index

    def paths(self) -> list[str]:
        base = self._load()
        out = [p for p in base.index if p not in self._pending]
        out.extend(p for p, row in self._pending.items() if row is not None)
        return out

    def __len__(self) -> int:
        return len(self.paths())

    # -- changing --------------------------------------------------------------------

    def record(self, path: str, st: Stat, oid: bytes, hashed_at_ns: int) -> None:
        self._load()
        if self._racy_ns is None:
            self._racy_ns = racy_ns(self._control.parent)
        racy = is_racy(st.st_mtime_ns, st.st_ctime_ns, hashed_at_ns, self._racy_ns)
        mode = SMUDGED if racy else st.st_mode
        row: Row = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode, hashed_at_ns, oid)
        if self.get(path) != row:
            self._pending[path] = row

    def forget(self, path: str) -> None:
        if self.get(path) is not None:
            self._pending[path] = None

    def set_stamp(self, stamp: Stamp | None) -> None:
        """Record that the entries, with the changes made so far, make ``stamp``'s tree."""
        self._load()
        if stamp != self._stamp or self._pending:
            self._stamp_changed = True
        self._stamp = stamp

    def set_mark(self, token: MonitorToken | None, clean: bytes | None = None) -> None:
        """Record that every path a watcher does not report as changed since ``token`` is
        as the entries, with the changes made so far, describe (None: no such promise),
        and, with ``clean`` (a commit id, hex), that the folder was that commit's tree
        when the watcher gave ``token``."""
        self._load()
        mark = None if token is None else (*token, NO_ID if clean is None else unhexlify(clean))
        if mark != self._mark:
            self._mark_changed = True
        self._mark = mark

    def flush(self) -> None:
        """Write the changes (and the stamp, if set since the last flush) to the file."""
        if self._base is None:
            return
        # Unchanged entries keep their stamp; changed ones keep it only if it was set anew.
        stamp = self._stamp if self._stamp_changed or not self._pending else None
        mark = self._mark
        if not self._pending and not self._stamp_changed and not self._mark_changed:
            return
        base = self._base
        try:
            st = os.stat(self.path)
            now: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now != self._ident:
            current, self._ident = read_file(self.path)
            base = current or EMPTY  # rewritten by another process: lay ours over it
            stamp = mark = None
        data = encode(base, self._pending, stamp, mark)
        write_file(self.path, data)
        _remove_abandoned_temps(self._control)
        if self._migrated:
            _empty_legacy_table(self._control)
            self._migrated = False
        # Read again on next use (rarely wanted after a flush).
        self._base, self._ident = None, None
        self._pending.clear()
        self._stamp_changed = False
        self._stamp = None
        self._mark, self._mark_changed = None, False
