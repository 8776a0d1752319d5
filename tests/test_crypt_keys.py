"""Key files and sealed objects of encrypted remotes, byte by byte (docs/format.md,
"Key file", "Padding", "Sealed object")."""

from __future__ import annotations

import struct

import pytest

from vsync.store.codec import MAX_CHUNK_BYTES
from vsync.sync.crypt.errors import RemoteTampered
from vsync.sync.crypt.keys import (
    KEY_HEAD,
    MAX_WRITTEN_LOG2N,
    BadKeyFile,
    MasterKey,
    key_params,
    new_master,
    padded,
    unwrap,
    wrap,
)
from vsync.sync.crypt.seal import (
    INDEX_ENTRY,
    KIND_BRANCH,
    KIND_GIT,
    Sealer,
    max_sealed_len,
    parse_index,
)


def test_a_key_file_opens_with_its_passphrase_only() -> None:
    master = new_master()
    data = wrap(master, "pass", 10)
    assert len(data) == 108 and data[:8] == b"VSYNCKEY"
    assert unwrap(data, "pass") == master
    assert unwrap(data, "other") is None


@pytest.mark.parametrize(
    ("log2n", "r", "p"),
    [(30, 8, 1), (22, 32, 1), (9, 8, 1), (10, 0, 1), (10, 8, 0), (10, 33, 1)],
)
def test_hostile_scrypt_parameters_are_refused_before_deriving(log2n: int, r: int, p: int) -> None:
    """A planted key file must not make the client allocate gigabytes."""
    data = bytearray(wrap(new_master(), "pass", 10))
    struct.pack_into(">BBB", data, 10, log2n, r, p)
    with pytest.raises(BadKeyFile):
        unwrap(bytes(data), "pass")


# A key file written by vsync at 946cb7b with the default of that time (log2n 17,
# r 8, p 1: 128 MiB), passphrase "old default passphrase", master bytes 0..31 and
# repository id bytes 100..115.
EARLIER_DEFAULT_KEY = bytes.fromhex(
    "5653594e434b45590101110801079d74a483540ed8a3917407e79d4a8c8422dd67f0fcd23e9592"
    "05216c638c8a214e6650df8a28f31974f6eb3bce4332477d1c4dc8f569f65084d754e07003391d"
    "ff0fde876c2bf68faead6d425281ea4fcac997deff4fd09dd58435f09a88"
)


def test_a_key_file_with_the_earlier_default_still_opens() -> None:
    """New key files take 64 MiB; a remote made before must open as it did: the
    parameters come from the file, not from the defaults."""
    params = key_params(EARLIER_DEFAULT_KEY)
    assert (params.log2n, params.r, params.p, params.memory) == (17, 8, 1, 128 << 20)
    master = unwrap(EARLIER_DEFAULT_KEY, "old default passphrase")
    assert master == MasterKey(bytes(range(32)), bytes(range(100, 116)))


def test_no_key_file_is_written_that_a_reader_would_refuse() -> None:
    """The largest log2n vsync writes is the largest whose memory a reader accepts
    (else ``init --encrypted --scrypt-log2n 21`` made a remote nothing opens)."""
    data = bytearray(wrap(new_master(), "pass", 10))
    struct.pack_into(">B", data, 10, MAX_WRITTEN_LOG2N)
    assert key_params(bytes(data)).memory == 1 << 30
    with pytest.raises(ValueError, match="log2n"):
        wrap(new_master(), "pass", MAX_WRITTEN_LOG2N + 1)  # refused before deriving


def test_changed_key_file_parameters_do_not_open() -> None:
    data = bytearray(wrap(new_master(), "pass", 10))
    data[KEY_HEAD.size - 13] ^= 1  # a byte of the salt
    assert unwrap(bytes(data), "pass") is None


def test_padding_hides_small_differences() -> None:
    assert padded(1) == padded(1000) == 1024
    assert padded(100_000) == padded(100_300) == 100_352
    for n in (1500, 70_000, 5_000_000, 3 << 30):
        assert n <= padded(n) <= n * 1.12


def test_a_sealed_object_opens_only_under_its_name_kind_and_repository() -> None:
    sealer = Sealer(new_master())
    sealed = sealer.seal(KIND_GIT, "git/aa", b"payload")
    assert sealer.open(KIND_GIT, "git/aa", sealed) == b"payload"
    assert len(sealed) == 24 + 1024 + 16
    with pytest.raises(RemoteTampered):
        sealer.open(KIND_GIT, "git/bb", sealed)
    with pytest.raises(RemoteTampered):
        sealer.open(KIND_BRANCH, "git/aa", sealed)
    with pytest.raises(RemoteTampered):
        Sealer(new_master()).open(KIND_GIT, "git/aa", sealed)


def test_an_index_declaring_a_record_longer_than_its_chunk_is_refused() -> None:
    """What an index declares bounds every later read: a record may not be longer
    than its chunk's sealed maximum (else a hostile index makes a fetch allocate)."""
    sealer = Sealer(new_master())
    cid = bytes(32)
    for raw_len, length in ((1000, 1 << 30), (MAX_CHUNK_BYTES + 1, 100)):
        payload = struct.pack(">BI", 1, 1) + INDEX_ENTRY.pack(cid, 12, length, raw_len, 0)
        name = sealer.name_id(b"chunk-pack\0", cid)
        with pytest.raises(RemoteTampered, match="longer than its chunk allows"):
            parse_index(name, payload, sealer)
    ok = struct.pack(">BI", 1, 1) + INDEX_ENTRY.pack(cid, 12, max_sealed_len(1000), 1000, 0)
    assert parse_index(sealer.name_id(b"chunk-pack\0", cid), ok, sealer)[0].raw_len == 1000
