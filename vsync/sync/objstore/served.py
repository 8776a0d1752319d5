"""The object-store backend that talks to ``vsync serve --stdio PATH`` (over SSH,
or as a local subprocess): the same five operations as messages
(docs/protocol.md, "Object store"). What the server answers is bounded and
checked like any peer's words: a read never returns more than was asked."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from vsync.errors import VsyncError
from vsync.sync import protocol as p
from vsync.sync.objstore import ObjectMissing, check_name
from vsync.sync.objstore.serve import receive_data, send_data
from vsync.sync.protocol import Connection, ProtocolError
from vsync.sync.transport import Transport, open_transport
from vsync.sync.url import RemoteURL

MAX_NAMES = 1 << 20


class ServedStore:
    def __init__(self, transport: Transport, create: tuple[str, bytes] | None = None) -> None:
        self.transport = transport
        self.conn = Connection(transport)
        extra: dict[str, Any] = {"objects": 1}
        if create is not None:
            extra["create_encrypted"] = {"name": check_name(create[0]), "data": create[1].hex()}
        self.conn.send_json(p.HELLO, p.hello_payload("client", **extra))
        self.conn.flush()
        hello = self.conn.expect(p.HELLO).json()
        p.check_hello(hello)
        if hello.get("objects") != 1:
            raise ProtocolError("the remote does not serve an object store (upgrade vsync there)")

    @classmethod
    def open(
        cls,
        url: RemoteURL,
        remote_cmd: str | None = None,
        accept_new_host: bool = False,
        create: tuple[str, bytes] | None = None,
    ) -> ServedStore:
        """Connect; with ``create`` (a key file's name and bytes), ask the server to
        make the encrypted remote first (docs/protocol.md, "Object store")."""
        transport = open_transport(url, remote_cmd, accept_new_host)
        try:
            return cls(transport, create)
        except BaseException:
            transport.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(VsyncError):
            self.conn.send(p.BYE)
            self.conn.flush()
        with contextlib.suppress(VsyncError):
            self.transport.close()

    def _ask(
        self, request: dict[str, Any], data: bytes | bytearray | None = None
    ) -> dict[str, Any]:
        self.conn.send_json(p.OBJ_REQUEST, request)
        if data is not None:
            send_data(self.conn, data)
        self.conn.flush()
        return self.conn.expect(p.OBJ_REPLY).json()

    def list(self, prefix: str) -> list[str]:
        names: list[str] = []
        after = ""
        while True:
            reply = self._ask({"op": "list", "prefix": prefix, "after": after})
            page = reply.get("names")
            if not isinstance(page, list) or not all(isinstance(n, str) for n in page):
                raise ProtocolError("the remote sent a malformed list of names")
            for name in page:
                if not name.startswith(prefix) or name <= after:
                    raise ProtocolError("the remote listed a name out of order or prefix")
                check_name(name)
                after = name
            names.extend(page)
            if len(names) > MAX_NAMES:
                raise ProtocolError("the remote listed too many names")
            if not reply.get("more"):
                return names

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_name(name)
        want = length if length is not None else (1 << 30) + (1 << 20)
        self.conn.send_json(
            p.OBJ_REQUEST, {"op": "read", "name": name, "offset": offset, "length": want}
        )
        self.conn.flush()
        buf = bytearray()
        while True:
            msg = self.conn.expect(p.OBJ_DATA, p.OBJ_REPLY)
            if msg.type == p.OBJ_REPLY:
                info = msg.json()
                if info.get("missing"):
                    raise ObjectMissing(name)
                if info.get("bytes") != len(buf):
                    raise ProtocolError("the remote's OBJ_REPLY does not match what it sent")
                return bytes(buf)
            buf += msg.payload
            if len(buf) > want:
                raise ProtocolError("the remote sent more of an object than was asked")

    def write_if_absent(self, name: str, data: bytes | bytearray) -> bool:
        check_name(name)
        reply = self._ask({"op": "write", "name": name, "size": len(data)}, data)
        return reply.get("written") is True

    def compare_and_swap(self, name: str, old: bytes | None, new: bytes) -> bool:
        check_name(name)
        digest = None if old is None else hashlib.sha256(old).hexdigest()
        reply = self._ask({"op": "cas", "name": name, "old": digest, "size": len(new)}, new)
        return reply.get("swapped") is True

    def delete(self, name: str) -> bool:
        check_name(name)
        return self._ask({"op": "delete", "name": name}).get("deleted") is True


__all__ = ["ServedStore", "receive_data"]
