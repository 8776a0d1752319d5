"""Hostile peers as real processes: a server fetched from, a pusher, a fetcher.

Each speaks the wire protocol with its own framing (no limits of ours), sends
what a script says, and lets the test measure the *receiving* process:

- ``python hostile_peer.py serve SCRIPT.json serve --stdio PATH`` is a hostile
  ``vsync serve`` for ``--remote-cmd``: it advertises ``tip``, answers the
  negotiation, sends the pack file named by the script and answers each
  CHUNK_WANT from the script's chunks (header fields may lie). Its data is
  made beforehand by the test, so this process stays small and the peak RSS
  of the client that waits for it is the client's own.
- :func:`push` runs a real ``vsync serve --stdio [--restrict-to DIR] PATH`` and
  pushes a script's pack and chunks into it, as a client with a restricted
  key could; :func:`fetch_flood` asks such a server with oversized HAVES or
  CHUNK_WANT messages. Both return the server's exit code, the messages it
  sent back and its peak RSS (``os.wait4``).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from packcraft import BLOB, COMMIT, TREE, Entry, build_pack, git_object_id

FRAME = struct.Struct(">IB")
CHUNK_HEAD = struct.Struct(">32sBI")
HELLO, REFS, HAVES, ACKS, PUSH = 0x01, 0x02, 0x03, 0x04, 0x05
PACK_DATA, PACK_END, CHUNK_WANT, CHUNK_WANT_END, CHUNK, CHUNKS_END = (
    0x10,
    0x11,
    0x20,
    0x21,
    0x22,
    0x23,
)
UPDATE_REF, RESULT, BYE, ERROR = 0x30, 0x31, 0x3E, 0x3F
CAPS = ["chunks-v1", "pack-v2", "thin-pack"]


class Closed(Exception):
    pass


class Wire:
    """Frames over two file descriptors, any length (a hostile peer obeys no limit)."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    def send(self, mtype: int, *parts: bytes) -> None:
        size = sum(len(x) for x in parts)
        try:
            os.write(self.write_fd, FRAME.pack(size, mtype))
            for part in parts:
                view = memoryview(part)
                while view:
                    n = os.write(self.write_fd, view[: 1 << 20])
                    view = view[n:]
        except (BrokenPipeError, ConnectionResetError):
            raise Closed from None

    def send_file(self, mtype: int, head: bytes, path: str) -> None:
        """One frame: ``head`` then the file's bytes, read a MiB at a time."""
        size = os.path.getsize(path)
        self.send_raw(FRAME.pack(len(head) + size, mtype) + head)
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                self.send_raw(block)

    def send_raw(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.write_fd, view)
                view = view[n:]
        except (BrokenPipeError, ConnectionResetError):
            raise Closed from None

    def send_json(self, mtype: int, value: dict[str, Any]) -> None:
        self.send(mtype, json.dumps(value).encode())

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            data = os.read(self.read_fd, n - len(out))
            if not data:
                raise Closed
            out += data
        return bytes(out)

    def recv(self) -> tuple[int, bytes]:
        while True:
            length, mtype = FRAME.unpack(self._read(FRAME.size))
            payload = self._read(length)
            if mtype < 0x80:
                return mtype, payload


# -- what a hostile peer sends, made by the test --------------------------------------


def manifest(entries: list[tuple[bytes, int]]) -> bytes:
    size = sum(n for _c, n in entries)
    head = b"VSMF" + bytes([1, 0, 0, 0]) + size.to_bytes(8, "big") + len(entries).to_bytes(4, "big")
    return head + b"".join(c + n.to_bytes(4, "big") for c, n in entries)


def history(files: dict[bytes, bytes], extra: list[Entry] | None = None) -> tuple[str, bytes]:
    """A root commit of a tree holding ``files`` (name -> manifest bytes), as a pack
    with ``extra`` objects after it: (commit id hex, pack bytes)."""
    entries = [Entry(BLOB, data) for data in files.values()]
    tree = b"".join(
        b"100644 " + name + b"\0" + git_object_id(BLOB, data)
        for name, data in sorted(files.items())
    )
    tree_id = git_object_id(TREE, tree)
    commit = (
        b"tree " + tree_id.hex().encode() + b"\n"
        b"author h <h@h> 0 +0000\ncommitter h <h@h> 0 +0000\n\nhostile\n"
    )
    entries += [Entry(TREE, tree), Entry(COMMIT, commit)]
    base = len(entries)
    for e in extra or []:
        if e.type_num == 6 and isinstance(e.base, int):
            e = Entry(e.type_num, e.data, e.base + base, e.size, e.zdata)
        entries.append(e)
    return git_object_id(COMMIT, commit).hex(), build_pack(entries)


def zstd_bomb(declared: int, with_size: bool = True) -> bytes:
    """A zstd frame of ``declared`` zero bytes (about 32 KiB per GiB), optionally
    without the content size in its header."""
    comp = zstandard.ZstdCompressor(level=1, write_content_size=with_size)
    obj = comp.compressobj(size=declared if with_size else -1)
    block = bytes(1 << 20)
    parts = []
    left = declared
    while left:
        take = min(left, len(block))
        parts.append(obj.compress(block[:take]))
        left -= take
    parts.append(obj.flush())
    return b"".join(parts)


@dataclass
class Script:
    """What a hostile peer sends: a pack and, per chunk id, the CHUNK answering it."""

    tip: str
    pack: Path
    chunks: dict[str, dict[str, Any]] = field(default_factory=dict)  # hex id -> fields

    def add_chunk(self, cid: bytes, compression: int, raw_len: int, payload: Path) -> None:
        self.chunks[cid.hex()] = {
            "compression": compression,
            "raw_len": raw_len,
            "payload": str(payload),
        }

    def save(self, path: Path) -> Path:
        path.write_text(
            json.dumps({"tip": self.tip, "pack": str(self.pack), "chunks": self.chunks})
        )
        return path


def load(path: str) -> Script:
    raw = json.loads(Path(path).read_text())
    return Script(raw["tip"], Path(raw["pack"]), raw["chunks"])


def send_pack(wire: Wire, pack: Path) -> None:
    data = pack.read_bytes()
    for i in range(0, len(data), 1 << 20):
        wire.send(PACK_DATA, data[i : i + (1 << 20)])
    count = int.from_bytes(data[8:12], "big") if len(data) >= 12 else 0
    wire.send_json(PACK_END, {"objects": count, "bytes": len(data)})


def answer_wants(wire: Wire, script: Script) -> tuple[int, bytes] | None:
    """Answer CHUNK_WANTs until CHUNK_WANT_END (None) or another message, returned;
    an id the script does not know gets an ERROR (returned as ERROR)."""
    while True:
        mtype, payload = wire.recv()
        if mtype == CHUNK_WANT_END:
            wire.send_json(CHUNKS_END, {"chunks": 0, "bytes": 0})
            return None
        if mtype != CHUNK_WANT:
            return mtype, payload
        for i in range(0, len(payload), 32):
            cid = payload[i : i + 32]
            spec = script.chunks.get(cid.hex())
            if spec is None:
                wire.send_json(ERROR, {"code": "hostile", "message": "no such chunk here"})
                return ERROR, b"{}"
            wire.send_file(
                CHUNK, CHUNK_HEAD.pack(cid, spec["compression"], spec["raw_len"]), spec["payload"]
            )


def serve(script: Script) -> int:
    """The hostile ``vsync serve``: stdin/stdout are the client's pipe."""
    wire = Wire(0, 1)
    try:
        wire.recv()  # HELLO
        wire.send_json(
            HELLO,
            {
                "protocol": "vsync",
                "version": 1,
                "role": "server",
                "capabilities": CAPS,
                "format": 1,
                "bare": True,
            },
        )
        wire.send_json(REFS, {"refs": {"refs/heads/main": script.tip}})
        while True:
            mtype, payload = wire.recv()
            if mtype == BYE:
                return 0
            if mtype != HAVES:
                return 1
            if json.loads(payload).get("done"):
                break
            wire.send_json(ACKS, {"common": []})
        send_pack(wire, script.pack)
        answer_wants(wire, script)
        wire.recv()  # BYE
    except Closed:
        pass
    return 0


# -- against a real `vsync serve` ------------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    maxrss_mib: float
    messages: list[tuple[int, dict[str, Any]]]  # JSON messages the server sent
    stderr: str

    @property
    def error(self) -> str:
        for mtype, info in self.messages:
            if mtype == ERROR:
                return str(info.get("message", ""))
            if mtype == RESULT and not info.get("ok"):
                return str(info.get("message", ""))
        return ""


def _serve_process(
    path: Path, restrict_to: Path | None, address_space_mib: int = 0
) -> tuple[subprocess.Popen[bytes], Path]:
    argv = [sys.executable, "-m", "vsync", "serve", "--stdio"]
    if restrict_to is not None:
        argv += ["--restrict-to", str(restrict_to)]
    out = path.parent / f"maxrss-serve-{os.getpid()}"
    proc = subprocess.Popen(
        measured([*argv, str(path)], out, address_space_mib),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, out


def _finish(
    proc: subprocess.Popen[bytes], out: Path, messages: list[tuple[int, dict[str, Any]]]
) -> Outcome:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    wire = Wire(proc.stdout.fileno(), -1)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    try:
        while True:
            mtype, payload = wire.recv()
            if mtype in (ERROR, RESULT):
                messages.append((mtype, json.loads(payload)))
    except Closed:
        pass
    proc.wait()
    reader.join()
    proc.stdout.close()
    proc.stderr.close()
    peak = peak_mib(out)
    out.unlink()
    return Outcome(proc.returncode, peak, messages, b"".join(err).decode())


def _hello(wire: Wire) -> dict[str, str]:
    wire.send_json(
        HELLO, {"protocol": "vsync", "version": 1, "role": "client", "capabilities": CAPS}
    )
    mtype, _ = wire.recv()
    assert mtype == HELLO
    mtype, payload = wire.recv()
    assert mtype == REFS
    return dict(json.loads(payload)["refs"])


def push(
    path: Path, script: Script, restrict_to: Path | None = None, address_space_mib: int = 0
) -> Outcome:
    """Push ``script`` into a real ``vsync serve`` at ``path``."""
    proc, out = _serve_process(path, restrict_to, address_space_mib)
    assert proc.stdin is not None and proc.stdout is not None
    wire = Wire(proc.stdout.fileno(), proc.stdin.fileno())
    messages: list[tuple[int, dict[str, Any]]] = []
    try:
        refs = _hello(wire)
        update = {"ref": "refs/heads/main", "old": refs.get("refs/heads/main"), "new": script.tip}
        wire.send_json(PUSH, update)
        mtype, payload = wire.recv()
        messages.append((mtype, json.loads(payload)))
        if mtype == RESULT and json.loads(payload).get("ok"):
            send_pack(wire, script.pack)
            other = answer_wants(wire, script)
            if other is None:
                wire.send_json(UPDATE_REF, update)
            elif other[0] in (ERROR, RESULT) and other[1] != b"{}":
                messages.append((other[0], json.loads(other[1])))
    except Closed:
        pass
    return _finish(proc, out, messages)


def fetch_flood(path: Path, mode: str) -> Outcome:
    """Ask a real ``vsync serve`` at ``path`` for its branch, hostile-ly:

    - ``haves-frame``: one HAVES of 1.5 million oids (64 MiB of JSON);
    - ``haves-rounds``: 4,097 offers in batches of 32 (one past the limit);
    - ``want-frame``: after the pack, one CHUNK_WANT of 2 million ids (64 MiB).
    """
    proc, out = _serve_process(path, None)
    assert proc.stdin is not None and proc.stdout is not None
    wire = Wire(proc.stdout.fileno(), proc.stdin.fileno())
    messages: list[tuple[int, dict[str, Any]]] = []
    try:
        refs = _hello(wire)
        tip = refs["refs/heads/main"]
        if mode == "haves-frame":
            wire.send_json(HAVES, {"want": [tip], "have": [tip] * 1_500_000})
        elif mode == "haves-rounds":
            for _ in range(129):
                wire.send_json(HAVES, {"want": [tip], "have": [tip] * 32})
                mtype, payload = wire.recv()
                if mtype != ACKS:
                    messages.append((mtype, json.loads(payload)))
                    break
            else:
                wire.send_json(HAVES, {"want": [tip], "have": [], "done": True})
                while wire.recv()[0] != PACK_END:
                    pass
                wire.send(CHUNK_WANT_END)
                wire.recv()  # CHUNKS_END
                wire.send(BYE)
        elif mode == "want-frame":
            wire.send_json(HAVES, {"want": [tip], "have": [], "done": True})
            while wire.recv()[0] != PACK_END:
                pass
            wire.send(CHUNK_WANT, os.urandom(32) * (2 << 20))
        else:
            raise ValueError(mode)
    except Closed:
        pass
    return _finish(proc, out, messages)


def measured(argv: list[str], out: Path, address_space_mib: int = 0) -> list[str]:
    """``argv`` run through this file's ``measure`` launcher, which writes the peak
    RSS (KiB) of what it runs to ``out``. The launcher is a fresh small process: a
    child forked straight from the test would inherit the test's own high-water
    mark (Linux keeps the larger of the two across exec). ``address_space_mib``
    (if not 0) is RLIMIT_AS for what it runs: a machine short of memory."""
    here = str(Path(__file__).resolve())
    return [sys.executable, here, "measure", str(out), str(address_space_mib), *argv]


def peak_mib(out: Path) -> float:
    return int(out.read_text()) / 1024


def maxrss_of(
    argv: list[str], cwd: Path, env: dict[str, str], address_space_mib: int = 0
) -> tuple[int, str, str, float]:
    """Run ``argv``; (exit code, stdout, stderr, peak RSS in MiB of it and what it waited for)."""
    out = cwd.parent / f"maxrss-{os.getpid()}-{threading.get_ident()}"
    proc = subprocess.run(
        measured(argv, out, address_space_mib),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    peak = peak_mib(out)
    out.unlink()
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(), peak


def measure(out: str, address_space_mib: int, argv: list[str]) -> int:
    """Run ``argv`` with this process's stdio; write its peak RSS (KiB) to ``out``."""

    def limit() -> None:
        if address_space_mib:
            size = address_space_mib << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    proc = subprocess.Popen(argv, preexec_fn=limit)
    _pid, status, usage = os.wait4(proc.pid, 0)
    Path(out).write_text(str(usage.ru_maxrss))
    return os.waitstatus_to_exitcode(status)


def main() -> int:
    if len(sys.argv) > 4 and sys.argv[1] == "measure":
        return measure(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        return serve(load(sys.argv[2]))
    print(
        "usage: hostile_peer.py serve SCRIPT.json serve --stdio PATH\n"
        "       hostile_peer.py measure OUT ADDRESS_SPACE_MIB ARGV...",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())


# -- the bombs ---------------------------------------------------------------------------

BOMB_MODES = [
    "delta-bomb",  # a 165-byte pack whose delta chain resolves to 512 MiB
    "zlib-bomb",  # a 1 MiB pack holding a blob that inflates to 1 GiB
    "zstd-bomb",  # a 32 KiB chunk whose zstd frame declares 1 GiB
    "zstd-raw-len",  # a chunk claiming 1 GiB raw, in a frame that states no size
    "chunk-frames",  # 40,000-byte chunks sent with 60 MiB payloads, a batch of them
    "many-entries",  # two manifests of 2**20 entries each (the legal maximum)
]


def build(mode: str, where: Path) -> Script:
    """The script of a hostile peer for ``mode`` (files under ``where``)."""
    from packcraft import delta_bomb, zlib_of_zeros

    where.mkdir(parents=True, exist_ok=True)
    pack = where / "pack"
    cid = bytes(range(32))
    small = manifest([(cid, 40_000)])
    if mode == "delta-bomb":
        tip, data = history({b"f": small}, delta_bomb(2))
        script = Script(tip, pack)
    elif mode == "zlib-bomb":
        size = 1 << 30
        bomb = Entry(BLOB, b"", size=size, zdata=zlib_of_zeros(size))
        tip, data = history({b"f": small}, [bomb])
        script = Script(tip, pack)
    elif mode in ("zstd-bomb", "zstd-raw-len"):
        tip, data = history({b"f": small})
        script = Script(tip, pack)
        body = where / "chunk"
        if mode == "zstd-bomb":
            body.write_bytes(zstd_bomb(1 << 30))
            script.add_chunk(cid, 1, 40_000, body)
        else:
            body.write_bytes(zstd_bomb(1 << 30, with_size=False))
            script.add_chunk(cid, 1, 1 << 30, body)
    elif mode == "chunk-frames":
        ids = [bytes([i]) * 32 for i in range(1, 6)]
        tip, data = history({b"f": manifest([(c, 40_000) for c in ids])})
        script = Script(tip, pack)
        body = where / "chunk"
        with open(body, "wb") as f:
            f.truncate(60 << 20)
        for c in ids:
            script.add_chunk(c, 0, 40_000, body)
    elif mode == "many-entries":
        n = 1 << 20
        files = {
            name: manifest([((k * n + i).to_bytes(32, "big"), 100) for i in range(n)])
            for k, name in enumerate((b"a", b"b"))
        }
        tip, data = history(files)
        script = Script(tip, pack)
    else:
        raise ValueError(mode)
    pack.write_bytes(data)
    return script
