"""``vsync serve --stdio PATH`` as an object store (the client's HELLO asks for
``objects``): the SSH backend's far end. It needs no key and knows nothing of
what it stores; it serves only a folder holding ``vsync-remote`` (an encrypted
remote), validates every name (:func:`vsync.sync.objstore.check_name`) and
bounds every size before it allocates (docs/protocol.md, "Object store").
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from vsync.errors import UsageError
from vsync.sync import protocol as p
from vsync.sync.objstore import ObjectMissing
from vsync.sync.objstore.folder import FolderStore
from vsync.sync.protocol import Connection, ProtocolError

MARKER = "vsync-remote"
MARKER_TEXT = b"vsync encrypted remote\nformat 1\n"
KEY_FILE_BYTES = 108  # docs/format.md, "Key file"
_FIRST_KEY = re.compile(r"keys/[0-9a-f]{16}")
MAX_OBJECT = (1 << 30) + (1 << 20)  # a sealed git pack of 1 GiB, with its padding
LIST_PAGE = 500


def _int(info: dict[str, Any], key: str, limit: int) -> int:
    value = info.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ProtocolError(f"the client sent a bad {key} in OBJ_REQUEST")
    return value


def _str(info: dict[str, Any], key: str) -> str:
    value = info.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"the client sent a bad {key} in OBJ_REQUEST")
    return value


def receive_data(conn: Connection, size: int) -> bytes:
    """Exactly ``size`` bytes of OBJ_DATA frames (``size`` bounded by the caller)."""
    buf = bytearray()
    while len(buf) < size:
        buf += conn.expect(p.OBJ_DATA).payload
        if len(buf) > size:
            raise ProtocolError("the peer sent more object bytes than it declared")
    return bytes(buf)


def send_data(conn: Connection, data: bytes | bytearray) -> None:
    view = memoryview(data)
    for at in range(0, len(data), p.PACK_DATA_BYTES):
        conn.send(p.OBJ_DATA, bytes(view[at : at + p.PACK_DATA_BYTES]))


def create_from_hello(hello: dict[str, Any], path: Path) -> None:
    """Make ``path`` an encrypted remote holding the one key file the client's HELLO
    sends (``"create_encrypted": {"name": "keys/<16 hex>", "data": hex}``): the server only
    stores it, as :meth:`FolderStore.create` builds any store."""
    create = hello.get("create_encrypted")
    if not isinstance(create, dict):
        raise ProtocolError("the client sent a bad create_encrypted in HELLO")
    name, data = create.get("name"), create.get("data")
    if not isinstance(name, str) or not _FIRST_KEY.fullmatch(name):
        raise ProtocolError("the client sent a bad key name in HELLO")
    if not isinstance(data, str) or len(data) != 2 * KEY_FILE_BYTES:
        raise ProtocolError("the client sent a bad key file in HELLO")
    try:
        key_file = bytes.fromhex(data)
    except ValueError:
        raise ProtocolError("the client sent a bad key file in HELLO") from None
    FolderStore.create(path, [(name, key_file), (MARKER, MARKER_TEXT)])


def serve_objects(conn: Connection, path: Path, raw_path: str, hello: dict[str, Any]) -> int:
    if "create_encrypted" in hello:
        create_from_hello(hello, path)
    if not (path / MARKER).is_file():
        raise UsageError(f"{raw_path} is not an encrypted vsync remote on the remote")
    store = FolderStore(path)
    conn.send_json(p.HELLO, p.hello_payload("server", objects=1))
    conn.flush()
    while True:
        msg = conn.expect(p.OBJ_REQUEST, p.BYE)
        if msg.type == p.BYE:
            return 0
        info = msg.json()
        op = info.get("op")
        reply: dict[str, Any]
        if op == "list":
            prefix, after = _str(info, "prefix"), _str(info, "after")
            names = [n for n in store.list(prefix) if n > after]
            reply = {"names": names[:LIST_PAGE], "more": len(names) > LIST_PAGE}
        elif op == "read":
            name = _str(info, "name")
            offset, length = _int(info, "offset", 1 << 62), _int(info, "length", MAX_OBJECT)
            try:
                data = store.read(name, offset, length)
            except ObjectMissing:
                reply = {"missing": True}
            else:
                send_data(conn, data)
                reply = {"bytes": len(data)}
        elif op == "write":
            name = _str(info, "name")
            data = receive_data(conn, _int(info, "size", MAX_OBJECT))
            reply = {"written": store.write_if_absent(name, data)}
        elif op == "cas":
            name, old = _str(info, "name"), info.get("old")
            new = receive_data(conn, _int(info, "size", MAX_OBJECT))
            try:
                current: bytes | None = store.read(name, 0, MAX_OBJECT + 1)
            except ObjectMissing:
                current = None
            digest = None if current is None else hashlib.sha256(current).hexdigest()
            swapped = digest == old and store.compare_and_swap(name, current, new)
            reply = {"swapped": swapped}
        elif op == "delete":
            reply = {"deleted": store.delete(_str(info, "name"))}
        else:
            raise ProtocolError("the client sent an unknown OBJ_REQUEST")
        conn.send_json(p.OBJ_REPLY, reply)
        conn.flush()
