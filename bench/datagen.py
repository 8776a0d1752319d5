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
    return path
