"""Key files, working keys and padding of encrypted remotes (docs/format.md,
"Keys", "Key file", "Padding")."""

from __future__ import annotations

import os
import secrets
import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KEY_MAGIC = b"VSYNCKEY"
# magic, version, kdf, log2n, r, p, creation hour (u24), salt, nonce
KEY_HEAD = struct.Struct(">8sBBBBB3s16s12s")
KEY_FILE_BYTES = KEY_HEAD.size + 48 + 16
KDF_SCRYPT = 1
# New key files: N = 2^16, r = 8, p = 2. scrypt's memory is 128 * N * r bytes (its
# p lanes run one after another in the same memory) and its work is proportional
# to N * r * p, so this is the work of the RFC 7914 / OWASP (2^17, 8, 1) in half
# its memory: 64 MiB instead of 128, which was the peak of every encrypted command
# (docs/security.md, "Key derivation"). Files with other parameters still open:
# a reader takes them from the file, bounded below.
DEFAULT_LOG2N, DEFAULT_R, DEFAULT_P = 16, 8, 2
MIN_LOG2N, MAX_LOG2N = 10, 22
MAX_SCRYPT_MEMORY = 1 << 30
# The largest log2n a new key file may have: its memory within what a reader accepts.
MAX_WRITTEN_LOG2N = (MAX_SCRYPT_MEMORY // (128 * DEFAULT_R)).bit_length() - 1
MIN_PADDED = 1024


@dataclass(frozen=True)
class MasterKey:
    """The master key and repository id, with the working keys derived from them."""

    master: bytes
    repo_id: bytes

    def _derive(self, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=self.repo_id, info=info).derive(
            self.master
        )

    @property
    def object_key(self) -> bytes:
        return self._derive(b"vsync-v1 seal")

    @property
    def name_key(self) -> bytes:
        return self._derive(b"vsync-v1 name")


def new_master() -> MasterKey:
    return MasterKey(secrets.token_bytes(32), secrets.token_bytes(16))


def _kek(passphrase: str, salt: bytes, log2n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2n, r=r, p=p).derive(passphrase.encode("utf-8"))


def wrap(master: MasterKey, passphrase: str, log2n: int = DEFAULT_LOG2N) -> bytes:
    """A key file holding ``master`` under ``passphrase``, stamped with the hour it
    was made."""
    if not MIN_LOG2N <= log2n <= MAX_WRITTEN_LOG2N:
        raise ValueError(f"scrypt log2n must be {MIN_LOG2N}..{MAX_WRITTEN_LOG2N}")
    salt, nonce = os.urandom(16), os.urandom(12)
    hour = min(int(time.time()) // 3600, (1 << 24) - 1).to_bytes(3, "big")
    head = KEY_HEAD.pack(KEY_MAGIC, 1, KDF_SCRYPT, log2n, DEFAULT_R, DEFAULT_P, hour, salt, nonce)
    kek = _kek(passphrase, salt, log2n, DEFAULT_R, DEFAULT_P)
    return head + ChaCha20Poly1305(kek).encrypt(nonce, master.master + master.repo_id, head)


class BadKeyFile(ValueError):
    pass


@dataclass(frozen=True)
class KeyParams:
    """What a key file shows without its passphrase (``vsync key list``)."""

    created: int | None  # Unix seconds, to the hour; None when not recorded
    log2n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        return 128 * (1 << self.log2n) * self.r


def key_params(data: bytes) -> KeyParams:
    """The KDF parameters and creation hour of key file ``data``, bounded as
    :func:`unwrap` bounds them; :class:`BadKeyFile` for anything else."""
    if len(data) != KEY_FILE_BYTES:
        raise BadKeyFile("wrong length")
    magic, version, kdf, log2n, r, p, hour, _salt, _nonce = KEY_HEAD.unpack_from(data)
    if magic != KEY_MAGIC or version != 1 or kdf != KDF_SCRYPT:
        raise BadKeyFile("not a version 1 scrypt key file")
    if not (MIN_LOG2N <= log2n <= MAX_LOG2N and 1 <= r <= 32 and 1 <= p <= 16):
        raise BadKeyFile("scrypt parameters out of range")
    if 128 * (1 << log2n) * r > MAX_SCRYPT_MEMORY:
        raise BadKeyFile("scrypt parameters need too much memory")
    hours = int.from_bytes(hour, "big")
    return KeyParams(hours * 3600 if hours else None, log2n, r, p)


def unwrap(data: bytes, passphrase: str) -> MasterKey | None:
    """The master key in key file ``data`` if ``passphrase`` opens it, else None;
    :class:`BadKeyFile` for a file that is not a key file this vsync reads (its
    scrypt parameters are bounded before anything is derived)."""
    params = key_params(data)
    salt, nonce = data[16:32], data[32:44]
    head = data[: KEY_HEAD.size]
    kek = _kek(passphrase, salt, params.log2n, params.r, params.p)
    try:
        inner = ChaCha20Poly1305(kek).decrypt(nonce, data[KEY_HEAD.size :], head)
    except InvalidTag:
        return None
    return MasterKey(inner[:32], inner[32:])


FULL_PACK_BLOCK = 4096


def full_pack_padded(length: int) -> int:
    """A chunk pack closed because it was full: ``length`` rounded up to a multiple
    of 4 KiB (docs/format.md, "Padding")."""
    return -(-length // FULL_PACK_BLOCK) * FULL_PACK_BLOCK


def padded(length: int) -> int:
    """Padmé: ``length`` rounded up so that only O(log log L) bits of it show."""
    length = max(length, MIN_PADDED)
    e = length.bit_length() - 1
    z = e - e.bit_length()
    return (length + (1 << z) - 1) >> z << z
