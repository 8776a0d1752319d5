"""Deterministic benchmark inputs: incompressible bytes and text-like log lines.

Both generators are pure functions of (seed, size): the same arguments give
the same bytes on every machine, so benchmark numbers can be compared across
runs. Neither repeats itself, so content-defined chunking finds nothing to
deduplicate inside one file.

- :func:`random_bytes` is the BLAKE3 extendable output of the seed (fast:
  several hundred MB/s on one core).
- :func:`log_lines` formats web-server style log lines (timestamp, level,
  host, method, request path with ids, status, size, latency, request id)
  from a seeded ``random.Random``; their zstd ratio is in the range real
  application logs show (about 4-6x at level 3).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3

BLOCK = 4 * 1024 * 1024

LEVELS = ["INFO"] * 11 + ["DEBUG"] * 3 + ["WARN", "ERROR"]
HOSTS = [f"{role}-{n:02d}" for role in ("web", "api", "worker", "db") for n in range(1, 9)]
METHODS = ["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"]
STATUS = [200] * 10 + [201, 204, 304, 404, 500, 503]
_RESOURCES = [
    "users", "orders", "items", "invoices", "sessions", "carts", "reviews", "shipments",
    "accounts", "reports", "files", "teams", "projects", "events", "tokens", "payments",
]  # fmt: skip
_ACTIONS = ["", "/history", "/items", "/status", "/comments", "/export", "/settings", "/audit"]
PATHS = [f"/api/v{v}/{res}/{{}}{act}" for v in (1, 2) for res in _RESOURCES for act in _ACTIONS]
AGENTS = [
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/125.0.0.0",
    "kube-probe/1.30",
]
MESSAGES = [
    "request completed",
    "cache miss, fetched from upstream",
    "slow query detected",
    "retrying upstream call",
    "session refreshed",
    "rate limit window reset",
    "payload validated",
    "connection pool saturated",
]
START_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


def random_bytes(seed: int, size: int) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in blocks of at most 4 MiB."""
    xof = blake3.blake3(seed.to_bytes(8, "big"))
    pos = 0
    while pos < size:
        n = min(BLOCK, size - pos)
        yield xof.digest(length=n, seek=pos)
        pos += n


def log_lines(seed: int, size: int) -> Iterator[bytes]:
    """``size`` bytes of log text (cut mid-line at the end), in ~4 MiB blocks."""
    rng = random.Random(seed)
    bits = rng.getrandbits
    # Cached vocabulary: every (level, host, method) head and (agent, message) tail.
    heads = [
        f"{LEVELS[i & 15]:<5} {HOSTS[(i >> 4) & 31]} {METHODS[(i >> 9) & 7]} " for i in range(4096)
    ]
    tails = [f' ua="{AGENTS[i & 7]}" msg="{MESSAGES[i >> 3]}"\n' for i in range(64)]
    ms = START_EPOCH * 1000
    stamp_sec = -1
    stamp = ""
    written = 0
    while written < size:
        lines: list[str] = []
        block_len = 0
        while block_len < BLOCK:
            r = bits(64)
            q = bits(64)
            ms += q & 0x3F
            if ms // 1000 != stamp_sec:
                stamp_sec = ms // 1000
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp_sec))
            line = (
                f"{stamp}.{ms % 1000:03d}Z {heads[r & 0xFFF]}"
                f"{PATHS[(r >> 12) & 0xFF].format((r >> 20) & 0xFFFFF)} "
                f"{STATUS[(r >> 40) & 15]} {(r >> 44) & 0xFFFF}B {(q >> 6) & 0x3FFF}ms "
                f"req={(q >> 20) & 0xFFFFFFFF:08x}{tails[q >> 58]}"
            )
            lines.append(line)
            block_len += len(line)
        data = "".join(lines).encode()
        data = data[: size - written]
        written += len(data)
        yield data


def write(path: Path, blocks: Iterator[bytes]) -> None:
    """Write ``blocks`` to ``path`` atomically (a finished file is never partial)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for block in blocks:
            f.write(block)
    os.replace(tmp, path)


def ensure(path: Path, kind: str, seed: int, size: int) -> Path:
    """Generate ``path`` unless a file of the right size is already there."""
    if path.is_file() and path.stat().st_size == size:
        return path
    gen = random_bytes(seed, size) if kind == "random" else log_lines(seed, size)
    write(path, gen)
    os.sync()  # written back now, not during the first timed step
    return path


# -- a source tree of small files --------------------------------------------------

TOP_DIRS = ["src", "lib", "tests", "docs", "tools", "examples", "include", "scripts", "web", "ci"]
WORDS = [
    "core", "util", "net", "io", "parse", "render", "model", "store", "cache", "auth",
    "config", "event", "queue", "sched", "index", "query", "codec", "stream", "log", "metrics",
    "http", "rpc", "shell", "graph", "layout", "theme", "locale", "crypto", "hash", "pool",
    "worker", "client", "server", "proto", "schema", "table", "view", "widget", "plugin", "api",
]  # fmt: skip
EXTS = [".py"] * 5 + [".c"] * 3 + [".h"] * 2 + [".js"] * 3 + [".md", ".txt", ".json", ".sh"]
_KEYWORDS = [
    "if", "for", "while", "return", "def", "class", "static", "const", "let", "var",
    "int", "char", "void", "struct", "import", "from", "else", "case", "break", "yield",
]  # fmt: skip
_OPS = [" = ", " += ", " == ", " != ", " < ", " >= ", " && ", " || ", " + ", " * "]
TREE_MEAN_LOG = 8.29  # lognormal sizes: median e^8.29 ~ 4 KB, mean ~ 6 KB with sigma 0.9
TREE_SIGMA = 0.9
TREE_MAX = 200_000
TREE_MIN = 64


def _line_pool(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct-ish lines of code-like text with varied indentation."""
    idents = [
        f"{rng.choice(WORDS)}_{rng.choice(WORDS)}{rng.randrange(100) if rng.random() < 0.3 else ''}"
        for _ in range(4000)
    ]
    pool: list[str] = []
    for _ in range(n):
        indent = "    " * rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4))
        shape = rng.randrange(6)
        a, b, c = rng.choice(idents), rng.choice(idents), rng.choice(idents)
        kw = rng.choice(_KEYWORDS)
        if shape == 0:
            line = f"{kw} {a}({b}, {c}):"
        elif shape == 1:
            line = f"{a}{rng.choice(_OPS)}{b}({c}, {rng.randrange(10_000)})"
        elif shape == 2:
            line = f"# {kw} {a} {b} when {c} is {rng.choice(_KEYWORDS)} ({rng.randrange(999)})"
        elif shape == 3:
            line = f"{kw} {a}.{b}[{rng.randrange(64)}]{rng.choice(_OPS)}{c};"
        elif shape == 4:
            line = f'{a} = "{b}/{c}/{rng.getrandbits(32):08x}"'
        else:
            indent, line = "", ""
        pool.append(indent + line + "\n")
    return pool


def _tree_dirs(rng: random.Random) -> list[str]:
    """About 500 directories, nested 2-3 levels below the root."""
    dirs: list[str] = []
    for top in TOP_DIRS:
        for sub in rng.sample(WORDS, 8):
            mid = f"{top}/{sub}"
            dirs.append(mid)
            for leaf in rng.sample(WORDS, rng.randrange(3, 8)):
                dirs.append(f"{mid}/{leaf}")
    return dirs


def source_tree(seed: int, root: Path, files: int = 50_000) -> Path:
    """A source-tree-like folder of ``files`` small text files (~6 KB mean) under ``root``.

    Sizes are lognormal (most 1-10 KB, a few up to 200 KB, about 300 MB for
    50,000 files); each file is a random sequence of lines from a pool of
    code-like lines, headed by its own path, so no two files are equal and
    zstd/zlib compress them about 3-4x. Written into ``root.tmp`` then renamed:
    an existing ``root`` is complete and is returned as it is.
    """
    if root.is_dir():
        return root
    rng = random.Random(seed)
    pool = _line_pool(rng, 200_000)
    mean_line = sum(map(len, pool)) / len(pool)
    dirs = _tree_dirs(rng)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    for d in dirs:
        (tmp / d).mkdir(parents=True)
    choices = rng.choices
    for i in range(files):
        size = min(TREE_MAX, max(TREE_MIN, int(rng.lognormvariate(TREE_MEAN_LOG, TREE_SIGMA))))
        rel = f"{dirs[rng.randrange(len(dirs))]}/{rng.choice(WORDS)}_{i}{rng.choice(EXTS)}"
        text = f"// {rel} ({seed}:{i})\n" + "".join(choices(pool, k=int(size / mean_line) + 1))
        with open(tmp / rel, "wb") as f:
            f.write(text.encode()[:size])
    os.replace(tmp, root)
    os.sync()  # written back now, not during the first timed step
    return root


def tree_files(root: Path) -> list[Path]:
    """Every file under ``root`` (skipping ``.vsync`` and ``.git``), sorted."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".vsync", ".git"))
        out.extend(Path(dirpath) / name for name in sorted(filenames))
    return out


def link_tree(src: Path, dest: Path) -> int:
    """Recreate ``src``'s directories under ``dest`` with hard links to its files."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dest / rel if rel != "." else dest
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            os.link(os.path.join(dirpath, name), target / name)
            n += 1
        dirnames.sort()
    return n


# -- edits -------------------------------------------------------------------------


def insert_middle(path: Path, seed: int, dest: Path | None = None) -> Path:
    """A copy of ``path`` with 10 seeded bytes inserted at ``size // 2``.

    The copy is a new file (``...-insert10-<seed>.dat`` beside ``path`` unless
    ``dest`` is given), never a hard link, so the original is untouched. An
    existing copy of the right size is reused.
    """
    size = path.stat().st_size
    target = dest or path.with_name(f"{path.stem}-insert10-{seed}{path.suffix}")
    if target.is_file() and target.stat().st_size == size + 10:
        return target
    insert = random.Random(seed).randbytes(10)

    def blocks() -> Iterator[bytes]:
        with open(path, "rb") as f:
            left = size // 2
            while left:
                block = f.read(min(BLOCK, left))
                left -= len(block)
                yield block
            yield insert
            while block := f.read(BLOCK):
                yield block

    write(target, blocks())
    os.sync()  # written back now, not during the first timed step
    return target


def modify_percent(root: Path, seed: int, pct: float = 1) -> list[Path]:
    """Modify ``pct`` percent of the files under ``root``, chosen and edited from ``seed``.

    Each chosen file gets one line in its middle replaced and one line
    appended. Files are rewritten through a temporary file and a rename, so a
    file that was a hard link gets a new inode and its other names keep the
    old bytes.
    """
    rng = random.Random(seed)
    files = tree_files(root)
    chosen = rng.sample(files, max(1, round(len(files) * pct / 100)))
    for path in chosen:
        lines = path.read_bytes().split(b"\n")
        mid = len(lines) // 2
        lines[mid] = f"    edited_{rng.getrandbits(32):08x} = {rng.randrange(10**6)}".encode()
        lines.append(f"# appended by modify_percent({seed}) {rng.getrandbits(48):012x}".encode())
        tmp = path.with_name(path.name + ".edit-tmp")
        tmp.write_bytes(b"\n".join(lines) + b"\n")
        os.replace(tmp, path)
    return chosen


# -- a mixed folder (issue 17) -----------------------------------------------------

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class MixedSpec:
    """How many files of each kind a mixed folder holds, and their size ranges (bytes)."""

    photos: int  # photo-like: incompressible, sizes uniform in [photo_min, photo_max]
    photo_min: int
    photo_max: int
    large: int  # large files, alternately incompressible (video-like) and log text (a dump)
    large_size: int
    logs: int  # log files, sizes uniform in [log_min, log_max]
    log_min: int
    log_max: int
    sources: int  # source-code-like text files, sizes as in :func:`source_tree`
    small: int  # small files (notes, thumbnails), sizes uniform in [small_min, small_max]
    small_min: int
    small_max: int


MIXED_FULL = MixedSpec(
    photos=240, photo_min=2 * MIB, photo_max=8 * MIB, large=2, large_size=256 * MIB,
    logs=24, log_min=1 * MIB, log_max=6 * MIB, sources=1_500,
    small=4_000, small_min=1 * KIB, small_max=20 * KIB,
)  # fmt: skip
MIXED_QUICK = MixedSpec(
    photos=12, photo_min=128 * KIB, photo_max=512 * KIB, large=2, large_size=4 * MIB,
    logs=4, log_min=64 * KIB, log_max=256 * KIB, sources=100,
    small=300, small_min=1 * KIB, small_max=20 * KIB,
)  # fmt: skip
# The folder's top-level folders, one per kind of data (the benchmark's table reads them).
MIXED_KINDS = {
    "Photos": "photos (incompressible)",
    "Large": "large files (one incompressible, one log text)",
    "logs": "log files (text)",
    "code": "source code (text)",
    "Notes": "small text notes",
    "Thumbnails": "small incompressible thumbnails",
}


def _file_seed(seed: int, kind: int, i: int) -> int:
    """A distinct 63-bit seed for file ``i`` of ``kind`` in the folder made from ``seed``."""
    return ((seed & 0x7FFF_FFFF) << 32) | (kind << 24) | (i & 0xFF_FFFF)


def _code_text(rng: random.Random, pool: list[str], mean_line: float, label: str) -> bytes:
    size = min(TREE_MAX, max(TREE_MIN, int(rng.lognormvariate(TREE_MEAN_LOG, TREE_SIGMA))))
    text = f"// {label}\n" + "".join(rng.choices(pool, k=int(size / mean_line) + 1))
    return text.encode()[:size]


def _photo_path(i: int) -> str:
    return f"Photos/{2015 + i % 9}/{1 + (i // 9) % 12:02d}/IMG_{4000 + i}.jpg"


def mixed_folder(seed: int, root: Path, spec: MixedSpec) -> Path:
    """A folder like a real one under ``root``: photos, large files, logs, source code,
    small notes and thumbnails (:data:`MIXED_KINDS`), every size and byte from ``seed``.

    Written into ``root.tmp`` then renamed: an existing ``root`` is complete and is
    returned as it is.
    """
    if root.is_dir():
        return root
    rng = random.Random(seed)
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    for i in range(spec.photos):
        size = rng.randint(spec.photo_min, spec.photo_max)
        write(tmp / _photo_path(i), random_bytes(_file_seed(seed, 1, i), size))
    for i in range(spec.large):
        if i % 2 == 0:
            path, gen = (
                f"Large/video-{i}.mp4",
                random_bytes(_file_seed(seed, 2, i), spec.large_size),
            )
        else:
            path, gen = f"Large/dump-{i}.sql", log_lines(_file_seed(seed, 2, i), spec.large_size)
        write(tmp / path, gen)
    for i in range(spec.logs):
        size = rng.randint(spec.log_min, spec.log_max)
        write(tmp / f"logs/service-{i:02d}.log", log_lines(_file_seed(seed, 3, i), size))
    pool = _line_pool(rng, 20_000)
    mean_line = sum(map(len, pool)) / len(pool)
    dirs = rng.sample(_tree_dirs(rng), 60)
    for i in range(spec.sources):
        rel = f"code/{dirs[i % len(dirs)]}/{rng.choice(WORDS)}_{i}{rng.choice(EXTS)}"
        write(tmp / rel, iter([_code_text(rng, pool, mean_line, rel)]))
    for i in range(spec.small):
        size = rng.randint(spec.small_min, spec.small_max)
        if i % 2 == 0:
            rel = f"Notes/{rng.choice(WORDS)}/note-{i}.md"
            lines = "".join(rng.choices(pool, k=int(size / mean_line) + 1))
            write(tmp / rel, iter([lines.encode()[:size]]))
        else:
            rel = f"Thumbnails/{i % 50:02d}/thumb-{i}.png"
            write(tmp / rel, random_bytes(_file_seed(seed, 4, i), size))
    os.replace(tmp, root)
    os.sync()  # written back now, not during the first timed step
    return root


def _rewrite(path: Path, data: Iterator[bytes]) -> None:
    """Replace ``path`` with ``data`` through a new file and a rename (a new inode: other
    hard links to the old file keep the old bytes)."""
    write(path, data)


def _appended(path: Path, extra: bytes) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            yield block
    yield extra


def mixed_edit(src: Path, dest: Path, seed: int, spec: MixedSpec) -> Path:
    """``src`` (a :func:`mixed_folder`) as it is after a day's work, under ``dest``:
    hard links to ``src``'s files, with edited files written anew (new inodes), some
    added and some removed, all from ``seed``.

    - photos: 2% get 64 bytes of their head rewritten (a metadata edit), 2% are
      removed, 4% are added;
    - the log-text large file gets 1 MiB of lines appended (64 KiB with ``--quick``
      sizes); the incompressible one is left as it is;
    - half the log files get 1/16 of their size in lines appended;
    - source code: 2% get a line replaced and a line appended, 1% removed, 1% added;
    - small notes and thumbnails: 1% rewritten, 2% removed, 2% added.

    Written into ``dest.tmp`` then renamed; an existing ``dest`` is returned as it is.
    """
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    link_tree(src, tmp)
    rng = random.Random(seed)

    def pick(files: list[Path], pct: float) -> list[Path]:
        return rng.sample(files, max(1, round(len(files) * pct / 100))) if files else []

    photos = tree_files(tmp / "Photos")
    for path in pick(photos, 2):
        head = rng.randbytes(64)
        with open(path, "rb") as f:
            rest = f.read()[64:]
        _rewrite(path, iter([head, rest]))
    for path in pick(photos, 2):
        path.unlink()
    for i in range(max(1, round(spec.photos * 4 / 100))):
        size = rng.randint(spec.photo_min, spec.photo_max)
        n = spec.photos + i
        write(tmp / _photo_path(n), random_bytes(_file_seed(seed, 5, i), size))
    extra = max(64 * KIB, spec.large_size // 256)
    for path in tree_files(tmp / "Large"):
        if path.suffix == ".sql":
            more = b"".join(log_lines(_file_seed(seed, 6, 0), extra))
            _rewrite(path, _appended(path, b"\n" + more))
    logs = tree_files(tmp / "logs")
    for j, path in enumerate(pick(logs, 50)):
        more = b"".join(log_lines(_file_seed(seed, 7, j), path.stat().st_size // 16))
        _rewrite(path, _appended(path, more))
    code = tree_files(tmp / "code")
    for path in pick(code, 2):
        lines = path.read_bytes().split(b"\n")
        lines[len(lines) // 2] = f"    edited_{rng.getrandbits(32):08x} = 1".encode()
        lines.append(f"# appended {rng.getrandbits(48):012x}".encode())
        _rewrite(path, iter([b"\n".join(lines) + b"\n"]))
    for path in pick(code, 1):
        path.unlink()
    for i in range(max(1, round(len(code) / 100))):
        rel = code[rng.randrange(len(code))].parent / f"added_{i}.py"
        write(rel, iter([f"# added by mixed_edit({seed}) {i}\n".encode() * rng.randint(20, 200)]))
    small = tree_files(tmp / "Notes") + tree_files(tmp / "Thumbnails")
    for path in pick(small, 1):
        _rewrite(path, iter([rng.randbytes(path.stat().st_size)]))
    for path in pick(small, 2):
        if path.exists():
            path.unlink()
    for i in range(max(1, round(spec.small * 2 / 100))):
        size = rng.randint(spec.small_min, spec.small_max)
        write(tmp / f"Notes/new/note-added-{i}.md", iter([rng.randbytes(size // 2).hex().encode()]))
    os.replace(tmp, dest)
    os.sync()  # written back now, not during the first timed step
    return dest


def tree_diff(old: Path, new: Path) -> tuple[list[str], list[str], list[str]]:
    """(added, modified, removed) relative paths from ``old`` to ``new``: a file of both
    is modified when it is not the same inode (the trees share unchanged files as hard
    links)."""

    def index(root: Path) -> dict[str, os.stat_result]:
        return {str(p.relative_to(root)): p.stat() for p in tree_files(root)}

    a, b = index(old), index(new)
    added = sorted(set(b) - set(a))
    removed = sorted(set(a) - set(b))
    modified = sorted(p for p in set(a) & set(b) if a[p].st_ino != b[p].st_ino)
    return added, modified, removed


def relink(dest: Path, target: Path) -> None:
    """Make ``dest`` (hard links to some tree's files) hold ``target``'s files: what
    ``target`` lacks is removed, what differs (another inode) is replaced by a link to
    ``target``'s file through a rename, the rest is left untouched (same inode, same
    times: no tool has reason to read it again)."""
    have = {str(p.relative_to(dest)) for p in tree_files(dest)}
    want = {str(p.relative_to(target)) for p in tree_files(target)}
    for rel in sorted(have - want):
        (dest / rel).unlink()
    for rel in sorted(want):
        src, out = target / rel, dest / rel
        if rel in have and os.stat(out).st_ino == os.stat(src).st_ino:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".relink-tmp")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, out)
