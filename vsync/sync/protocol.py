"""The vsync wire protocol, version 1: framing and messages (normative: docs/protocol.md).

Every message is a frame::

    u32  payload length (big-endian, at most the type's limit, MAX_FRAME)
    u8   message type
    ...  payload

The length is checked against its type's limit before any of the payload is
read, so a peer cannot make this side hold more than the limit.

Types below 0x80 are *mandatory*: a peer that does not know one stops with
an error. Types from 0x80 up are *optional* and are skipped when unknown.
Control payloads are UTF-8 JSON objects; bulk payloads are binary.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from vsync.errors import StoppedError
from vsync.store.codec import MAX_CHUNK_BYTES, max_stored_len

PROTOCOL_NAME = "vsync"
PROTOCOL_VERSION = 1
MAX_PAYLOAD = 64 * 1024 * 1024  # no frame is longer; an unknown optional one is skipped unread
FRAME = struct.Struct(">IB")
CONTROL_BYTES = 64 * 1024  # every JSON message
PACK_DATA_BYTES = 1024 * 1024  # a sender cuts its git pack into frames of at most this
WANT_BATCH = 256  # chunk ids per CHUNK_WANT (8 KiB)

HELLO = 0x01
REFS = 0x02
HAVES = 0x03
ACKS = 0x04
PUSH = 0x05
PACK_DATA = 0x10
PACK_END = 0x11
CHUNK_WANT = 0x20
CHUNK_WANT_END = 0x21
CHUNK = 0x22
CHUNKS_END = 0x23
OFFER_CHUNK = 0x24  # send-v1: the client sends a chunk before any request names it
OFFER_END = 0x25  # send-v1: no more offered chunks; the server answers with REFS
WANT_TOTAL = 0x26  # want-total-v1: what a push's receiver will ask for, before it asks
UPDATE_REF = 0x30
RESULT = 0x31
WATCH = 0x40  # watch-v1: the client asks to be told when a ref moves
WATCHING = 0x41
REF_MOVED = 0x42
OBJ_REQUEST = 0x50  # objects-v1: a request to an object store (JSON)
OBJ_DATA = 0x51  # objects-v1: an object's bytes, in pieces
OBJ_REPLY = 0x52  # objects-v1: the answer to a request (JSON)
BYE = 0x3E
ERROR = 0x3F
PROGRESS = 0x80  # optional
KEEPALIVE = 0x81  # optional: an idle watch session is still alive

NAMES = {
    HELLO: "HELLO",
    REFS: "REFS",
    HAVES: "HAVES",
    ACKS: "ACKS",
    PUSH: "PUSH",
    PACK_DATA: "PACK_DATA",
    PACK_END: "PACK_END",
    CHUNK_WANT: "CHUNK_WANT",
    CHUNK_WANT_END: "CHUNK_WANT_END",
    CHUNK: "CHUNK",
    CHUNKS_END: "CHUNKS_END",
    OFFER_CHUNK: "OFFER_CHUNK",
    OFFER_END: "OFFER_END",
    WANT_TOTAL: "WANT_TOTAL",
    UPDATE_REF: "UPDATE_REF",
    RESULT: "RESULT",
    WATCH: "WATCH",
    WATCHING: "WATCHING",
    REF_MOVED: "REF_MOVED",
    OBJ_REQUEST: "OBJ_REQUEST",
    OBJ_DATA: "OBJ_DATA",
    OBJ_REPLY: "OBJ_REPLY",
    BYE: "BYE",
    ERROR: "ERROR",
    PROGRESS: "PROGRESS",
    KEEPALIVE: "KEEPALIVE",
}

CHUNK_HEAD = struct.Struct(">32sBI")  # id, compression, raw length; payload follows

MAX_FRAME = {
    HELLO: CONTROL_BYTES,
    REFS: CONTROL_BYTES,
    HAVES: CONTROL_BYTES,
    ACKS: CONTROL_BYTES,
    PUSH: CONTROL_BYTES,
    PACK_DATA: PACK_DATA_BYTES,
    PACK_END: CONTROL_BYTES,
    CHUNK_WANT: WANT_BATCH * 32,
    CHUNK_WANT_END: 0,
    CHUNK: CHUNK_HEAD.size + max_stored_len(MAX_CHUNK_BYTES),
    CHUNKS_END: CONTROL_BYTES,
    OFFER_CHUNK: CHUNK_HEAD.size + max_stored_len(MAX_CHUNK_BYTES),
    OFFER_END: CONTROL_BYTES,
    WANT_TOTAL: CONTROL_BYTES,
    UPDATE_REF: CONTROL_BYTES,
    RESULT: CONTROL_BYTES,
    WATCH: CONTROL_BYTES,
    WATCHING: CONTROL_BYTES,
    REF_MOVED: CONTROL_BYTES,
    OBJ_REQUEST: CONTROL_BYTES,
    OBJ_DATA: PACK_DATA_BYTES,
    OBJ_REPLY: CONTROL_BYTES,
    BYE: 0,
    ERROR: CONTROL_BYTES,
    PROGRESS: CONTROL_BYTES,
    KEEPALIVE: 0,
}
"""The longest payload of each message type (docs/protocol.md, "Framing")."""
CAPABILITIES = ["chunks-v1", "pack-v2", "thin-pack", "watch-v1", "send-v1", "want-total-v1"]
THIN_PACK = "thin-pack"  # the receiver resolves REF_DELTA bases it already has
WATCH_V1 = "watch-v1"  # the server answers WATCH (docs/protocol.md, "Watch")
SEND_V1 = "send-v1"  # offered chunks, and several requests in one session ("Send")
WANT_TOTAL_V1 = "want-total-v1"  # a push's server sends WANT_TOTAL ("Push", step 4)


def peer_has(hello: dict[str, Any], capability: str) -> bool:
    """Whether a peer's HELLO lists ``capability``."""
    caps = hello.get("capabilities")
    return isinstance(caps, list) and capability in caps


class ProtocolError(StoppedError):
    """The peer sent something this side cannot accept (exit 1)."""


class RemoteError(StoppedError):
    """The peer reported an error (its message is ours; ``code``: its ERROR's code)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class Pipe(Protocol):
    bytes_sent: int
    bytes_received: int

    def readexactly(self, n: int) -> bytes: ...
    def write(self, data: bytes | bytearray) -> None: ...
    def flush(self) -> None: ...


@dataclass
class Message:
    type: int
    payload: bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.type, f"0x{self.type:02x}")

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.payload.decode("utf-8"))
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
            raise ProtocolError(f"peer sent a malformed {self.name} message") from None
        if not isinstance(value, dict):
            raise ProtocolError(f"peer sent a malformed {self.name} message")
        return value


class Connection:
    """Framed messages over a blocking pipe."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def send(self, mtype: int, payload: bytes = b"") -> None:
        _check_size(mtype, len(payload))
        self.pipe.write(FRAME.pack(len(payload), mtype))
        if payload:
            self.pipe.write(payload)

    def send_parts(self, mtype: int, *parts: bytes) -> None:
        """One message whose payload is ``parts`` concatenated (not joined in memory)."""
        size = sum(len(part) for part in parts)
        _check_size(mtype, size)
        self.pipe.write(FRAME.pack(size, mtype))
        for part in parts:
            if part:
                self.pipe.write(part)

    def send_framed(self, frames: bytes | bytearray) -> None:
        """Whole frames made by :func:`frame_into`, written as they are (the pipe may
        keep ``frames``: never change it afterwards)."""
        self.pipe.write(frames)

    def send_json(self, mtype: int, value: dict[str, Any]) -> None:
        self.send(mtype, json.dumps(value, separators=(",", ":")).encode("utf-8"))

    def flush(self) -> None:
        self.pipe.flush()

    def recv(self) -> Message:
        """The next mandatory message; optional ones are skipped, ERROR raises.

        A frame longer than its type allows is refused before its payload is
        read; an unknown optional frame is read past in small pieces."""
        while True:
            length, mtype = self._frame_head()
            msg = self._payload(length, mtype)
            if msg is not None:
                return msg

    def recv_chunk(self) -> tuple[bytes, int, int, bytes]:
        """The next mandatory message, which must be CHUNK, as (id, compression, raw
        length, payload): its head and its payload are read apart, so the payload is
        not copied out of the frame (as :func:`decode_chunk` does)."""
        while True:
            length, mtype = self._frame_head()
            if mtype != CHUNK:
                msg = self._payload(length, mtype)
                if msg is None:
                    continue
                raise ProtocolError(f"protocol error: expected CHUNK, got {msg.name}")
            if length < CHUNK_HEAD.size:
                raise ProtocolError("peer sent a truncated CHUNK message")
            cid, compression, raw_len = CHUNK_HEAD.unpack(self.pipe.readexactly(CHUNK_HEAD.size))
            rest = length - CHUNK_HEAD.size
            return cid, compression, raw_len, self.pipe.readexactly(rest) if rest else b""

    def _frame_head(self) -> tuple[int, int]:
        """The next frame's (length, type) whose length its type allows; unknown
        optional frames are read past."""
        while True:
            length, mtype = FRAME.unpack(self.pipe.readexactly(FRAME.size))
            limit = MAX_FRAME.get(mtype)
            if limit is None:
                if mtype < 0x80:
                    raise ProtocolError(
                        f"peer sent unknown mandatory message type 0x{mtype:02x}; "
                        "upgrade vsync on both sides"
                    )
                if length > MAX_PAYLOAD:
                    raise ProtocolError(
                        f"peer sent a {length}-byte frame; the limit is {MAX_PAYLOAD}"
                    )
                self._skip(length)
                continue
            if length > limit:
                raise ProtocolError(
                    f"peer sent a {length}-byte {NAMES[mtype]} frame; the limit is {limit}"
                )
            return length, mtype

    def _payload(self, length: int, mtype: int) -> Message | None:
        """The frame's message; None for a known optional one (read and dropped);
        ERROR raises."""
        payload = self.pipe.readexactly(length) if length else b""
        msg = Message(mtype, payload)
        if mtype == ERROR:
            info = msg.json()
            raise RemoteError(
                str(info.get("message", "the remote reported an error")), str(info.get("code"))
            )
        return None if mtype >= 0x80 else msg

    def _skip(self, length: int) -> None:
        while length:
            step = min(length, CONTROL_BYTES)
            self.pipe.readexactly(step)
            length -= step

    def expect(self, *types: int) -> Message:
        msg = self.recv()
        if msg.type not in types:
            wanted = " or ".join(NAMES[t] for t in types)
            raise ProtocolError(f"protocol error: expected {wanted}, got {msg.name}")
        return msg

    def send_error(self, message: str, code: str = "error") -> None:
        self.send_json(ERROR, {"code": code, "message": message})
        self.flush()


def frame_into(out: bytearray, mtype: int, *parts: bytes | memoryview) -> None:
    """Append one message whose payload is ``parts`` concatenated to ``out`` (for
    :meth:`Connection.send_framed`: many small messages, one write)."""
    size = sum(len(part) for part in parts)
    _check_size(mtype, size)
    out += FRAME.pack(size, mtype)
    for part in parts:
        out += part


def _check_size(mtype: int, size: int) -> None:
    limit = MAX_FRAME.get(mtype, MAX_PAYLOAD)
    if size > limit:
        raise ValueError(f"{NAMES.get(mtype, mtype)} payload of {size} bytes is over {limit}")


def hello_payload(role: str, capabilities: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    from vsync import __version__

    return {
        "protocol": PROTOCOL_NAME,
        "version": PROTOCOL_VERSION,
        "role": role,
        "software": f"vsync {__version__}",
        "capabilities": CAPABILITIES if capabilities is None else capabilities,
        **extra,
    }


def check_hello(info: dict[str, Any]) -> None:
    if info.get("protocol") != PROTOCOL_NAME:
        raise ProtocolError("the remote does not speak the vsync protocol")
    version = info.get("version")
    if not isinstance(version, int) or version < 1:
        raise ProtocolError("the remote sent a bad protocol version")
    # A newer version is fine: the newer side speaks down to us.


_OID = re.compile(r"[0-9a-f]{40}")


def parse_oid(value: object, where: str) -> bytes:
    """A git object id from a peer's JSON: exactly 40 lowercase hex characters.

    ``where`` names the message for the error (its value is never echoed).
    """
    if not isinstance(value, str) or _OID.fullmatch(value) is None:
        raise ProtocolError(f"the remote sent a malformed object id in {where}")
    return value.encode("ascii")


def parse_oids(values: object, where: str) -> list[bytes]:
    if not isinstance(values, list):
        raise ProtocolError(f"the remote sent a malformed list of object ids in {where}")
    return [parse_oid(v, where) for v in values]


def parse_count(value: object, where: str) -> int:
    """A non-negative integer from a peer's JSON (``true`` is not a number)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"the remote sent a malformed count in {where}")
    return value


def encode_chunk(cid: bytes, compression: int, raw_len: int, payload: bytes) -> bytes:
    return CHUNK_HEAD.pack(cid, compression, raw_len) + payload


def decode_chunk(payload: bytes) -> tuple[bytes, int, int, bytes]:
    if len(payload) < CHUNK_HEAD.size:
        raise ProtocolError("peer sent a truncated CHUNK message")
    cid, compression, raw_len = CHUNK_HEAD.unpack_from(payload)
    return cid, compression, raw_len, payload[CHUNK_HEAD.size :]


def decode_chunk_view(payload: bytes) -> tuple[bytes, int, int, memoryview]:
    """:func:`decode_chunk` with the chunk's bytes as a view into ``payload`` (no copy)."""
    cid, compression, raw_len, _rest = decode_chunk(payload[: CHUNK_HEAD.size])
    return cid, compression, raw_len, memoryview(payload)[CHUNK_HEAD.size :]
