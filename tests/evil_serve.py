"""A hostile ``vsync serve``: used as --remote-cmd to prove the client trusts nothing.

Usage: python evil_serve.py MODE serve --stdio PATH
MODE: bad-chunk (a chunk's bytes do not match its id), bad-pack (a flipped
byte in the git pack), bad-delta (a git delta that rebuilds another object than
the one it stands for), no-thin (a server without the thin-pack capability, as
before it existed), honest (no tampering).
"""

from __future__ import annotations

import sys

from vsync.store import chunkstore
from vsync.sync import packgen, protocol, server, transfer


def main() -> int:
    mode = sys.argv[1]
    path = sys.argv[-1]
    if mode == "bad-chunk":
        real = chunkstore.ChunkStore.read_stored

        def read_stored(self, cid):  # type: ignore[no-untyped-def]
            s = real(self, cid)
            payload = bytearray(s.payload)
            payload[len(payload) // 2] ^= 0x55
            return chunkstore.StoredChunk(
                s.chunk_id, s.compression, s.raw_len, bytes(payload), s.pack_name
            )

        def read_stored_many(self, cids):  # type: ignore[no-untyped-def]
            return (read_stored(self, cid) for cid in cids)

        chunkstore.ChunkStore.read_stored = read_stored  # type: ignore[method-assign]
        chunkstore.ChunkStore.read_stored_many = read_stored_many  # type: ignore[method-assign]
    elif mode == "bad-pack":
        real_writer = transfer._FrameWriter.write

        def write(self, data):  # type: ignore[no-untyped-def]
            if self.total < 40 <= self.total + len(data):
                data = bytearray(data)
                data[40 - self.total] ^= 0xFF
                data = bytes(data)
            real_writer(self, data)

        transfer._FrameWriter.write = write  # type: ignore[method-assign]
    elif mode == "bad-delta":
        real_delta = packgen.create_delta

        def create_delta(base, target):  # type: ignore[no-untyped-def]
            wrong = bytearray(target)
            wrong[-1] ^= 0x01
            return real_delta(base, bytes(wrong))

        packgen.create_delta = create_delta
    elif mode == "no-thin":
        protocol.CAPABILITIES = [c for c in protocol.CAPABILITIES if c != protocol.THIN_PACK]
    return server.serve_stdio(path, None, lambda m: print(m, file=sys.stderr))


if __name__ == "__main__":
    raise SystemExit(main())
