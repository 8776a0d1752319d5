"""Keyed BLAKE3 ids: names that only the holder of the key can compute or recognise.

The encrypted remote names its objects with these (docs/format.md, "Encrypted
remotes"), so equal content is not recognisable across repositories.
"""

from __future__ import annotations

import blake3


def keyed_id(key: bytes, *parts: bytes) -> bytes:
    """BLAKE3 in keyed mode (``key``: 32 bytes) over ``parts`` concatenated: 32 bytes."""
    h = blake3.blake3(key=key)
    for part in parts:
        h.update(part)
    return h.digest()


def plain_id(data: bytes) -> bytes:
    """BLAKE3-256 of ``data`` (unkeyed)."""
    return blake3.blake3(data).digest()


def plain_id_of(*parts: bytes | memoryview) -> bytes:
    """BLAKE3-256 (unkeyed) over ``parts`` concatenated, without joining them first."""
    h = blake3.blake3()
    for part in parts:
        h.update(part)
    return h.digest()
