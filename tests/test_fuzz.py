"""Fuzzing the parsers of untrusted bytes: only clean errors, never a crash or a hang.

- the frame decoder (a peer's byte stream: ``Connection.recv`` / ``expect``,
  ``Message.json``, ``decode_chunk``), fed arbitrary and mutated streams;
- the manifest parser (``Manifest.from_bytes``, ``manifest_size``);
- the merge-state reader (``.vsync/merge/state`` on disk, loaded through
  ``MergeState.load``, the function ``status``, ``resolve``, ``commit`` and
  ``merge`` use), and what the CLI makes of a damaged one (exit 3).

The decoder reads from :class:`BytesPipe`, an in-memory implementation of the
``Pipe`` protocol: it is the decoder's input, not a stand-in for a transport
(real transports and hostile peers as processes are tested elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_vsync
from hypothesis import example, given, settings
from hypothesis import strategies as st
from merge_repo import History, Spec

from vsync.errors import DamagedRepository, UnsupportedFormat
from vsync.model.manifest import ENTRY, HEAD, Manifest, manifest_size
from vsync.model.repository import Repository
from vsync.ops.merge import MergeState, status_codes
from vsync.store.codec import MAX_CHUNK_BYTES
from vsync.sync import protocol as p
from vsync.sync.errors import TransportClosed

FUZZ = settings(max_examples=2000, deadline=None)


# -- a byte stream as the decoder's input ------------------------------------------------------


class BytesPipe:
    """The ``Pipe`` protocol over a fixed byte string: what a peer sent, then EOF."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def readexactly(self, n: int) -> bytes:
        if self.pos + n > len(self.data):  # refused before anything is allocated
            self.pos = len(self.data)
            raise TransportClosed("the fuzzing peer")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        self.bytes_received += n
        return out

    def write(self, data: bytes) -> None:
        self.bytes_sent += len(data)

    def flush(self) -> None:
        pass


CLEAN_ERRORS = (p.ProtocolError, p.RemoteError, TransportClosed)
JSON_TYPES = {
    p.HELLO,
    p.REFS,
    p.HAVES,
    p.ACKS,
    p.PUSH,
    p.PACK_END,
    p.CHUNKS_END,
    p.UPDATE_REF,
    p.RESULT,
}


def frame(mtype: int, payload: bytes) -> bytes:
    return p.FRAME.pack(len(payload), mtype) + payload


def drain(data: bytes) -> Exception:
    """Decode ``data`` as a peer's stream until it ends; the error that ended it."""
    conn = p.Connection(BytesPipe(data))
    for _ in range(len(data) // p.FRAME.size + 1):  # each frame takes >= 5 bytes
        try:
            msg = conn.recv()
            assert msg.type in p.NAMES and msg.type < 0x80, msg.type
            if msg.type in JSON_TYPES:
                assert isinstance(msg.json(), dict)
            elif msg.type == p.CHUNK:
                cid, _compression, _raw_len, body = p.decode_chunk(msg.payload)
                assert len(cid) == 32 and len(body) == len(msg.payload) - p.CHUNK_HEAD.size
        except CLEAN_ERRORS as exc:
            return exc
    raise AssertionError("the decoder did not stop at the end of its input")


def handshake(data: bytes) -> Exception | None:
    """What a client does first: expect HELLO, then REFS, reading both as JSON."""
    conn = p.Connection(BytesPipe(data))
    try:
        hello = conn.expect(p.HELLO).json()
        p.check_hello(hello)
        conn.expect(p.REFS).json()
    except CLEAN_ERRORS as exc:
        return exc
    return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
json_payloads = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n),  # nested past the recursion limit
    st.integers(1, 3000).map(lambda n: b'{"a":' * n),
    st.binary(max_size=64),
)
chunk_payloads = st.builds(
    lambda cid, comp, raw, body: p.CHUNK_HEAD.pack(cid, comp, raw) + body,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=64),
)
error_payloads = st.builds(
    lambda text, code: json.dumps({"code": code, "message": text}).encode(),
    st.text(max_size=40),
    st.text(max_size=10),
)
types = st.one_of(st.sampled_from(sorted(p.NAMES)), st.integers(0, 255))
messages = st.one_of(
    st.tuples(types, st.one_of(json_payloads, chunk_payloads, st.binary(max_size=64))),
    st.tuples(st.just(p.CHUNK), chunk_payloads),
    st.tuples(st.just(p.ERROR), st.one_of(error_payloads, json_payloads)),
    st.tuples(st.integers(0x80, 0xFF), st.binary(max_size=32)),
)
streams = st.lists(messages, max_size=6).map(lambda ms: b"".join(frame(t, d) for t, d in ms))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few byte-level mutations: flips, cuts, insertions, length fields."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete", "u32"]))
        if how == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif how == "u32":
            value = draw(
                st.sampled_from([0, 1, 2**31, 2**32 - 1, p.MAX_PAYLOAD, p.MAX_PAYLOAD + 1])
            )
            data[at : at + 4] = struct.pack(">I", value)
    return bytes(data)


@FUZZ
@given(st.binary(max_size=512))
@example(frame(p.HELLO, b"[" * 100_000))
@example(frame(p.ERROR, b"[" * 100_000))
@example(frame(p.REFS, b"1" * 5000))
@example(p.FRAME.pack(p.MAX_PAYLOAD, p.PACK_DATA))
@example(p.FRAME.pack(2**32 - 1, p.CHUNK))
def test_frame_decoder_takes_any_bytes(data: bytes) -> None:
    drain(data)
    handshake(data)


@FUZZ
@given(mutated(streams))
def test_frame_decoder_takes_mutated_streams(data: bytes) -> None:
    drain(data)
    handshake(data)


@FUZZ
@given(st.text(max_size=60), st.text(max_size=10))
def test_a_peer_error_is_a_remote_error_with_its_text(text: str, code: str) -> None:
    payload = json.dumps({"code": code, "message": text}).encode()
    exc = drain(frame(p.PROGRESS, b"{}") + frame(p.ERROR, payload))
    assert isinstance(exc, p.RemoteError) and str(exc) == text


# -- manifests -----------------------------------------------------------------------------


# Chunk lengths up to the format's maximum (a longer one is refused: test_hostile_bounds).
manifests = st.lists(
    st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, MAX_CHUNK_BYTES)), max_size=8
).map(lambda chunks: Manifest(sum(n for _c, n in chunks), list(chunks)))


def check_manifest(data: bytes) -> None:
    try:
        m = Manifest.from_bytes(data)
    except (DamagedRepository, UnsupportedFormat):
        m = None
    try:
        size = manifest_size(data)
    except (DamagedRepository, UnsupportedFormat):
        size = None
    if m is not None:
        assert size == m.size
        # what is accepted is the canonical encoding (flags and reserved are ignored)
        assert m.to_bytes()[:5] + m.to_bytes()[8:] == data[:5] + data[8:]


@FUZZ
@given(manifests)
def test_manifest_round_trip(m: Manifest) -> None:
    data = m.to_bytes()
    assert len(data) == HEAD.size + ENTRY.size * len(m.chunks)
    again = Manifest.from_bytes(data)
    assert again == m and again.to_bytes() == data and manifest_size(data) == m.size


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(manifests.map(Manifest.to_bytes))))
@example(b"VSMF\x00\x00\x00\x00" + bytes(12))
def test_manifest_parser_takes_any_bytes(data: bytes) -> None:
    check_manifest(data)


# -- the merge state -----------------------------------------------------------------------


def F(text: str) -> tuple[str, bytes | str, bool]:
    return ("file", text.encode(), False)


BASE: Spec = {"t.txt": F("a\nb\nc\n"), "bin.dat": F("\0base"), "gone.txt": F("g\n")}
OURS: Spec = {**BASE, "t.txt": F("a\nours\nc\n"), "bin.dat": F("\0ours")}
THEIRS: Spec = {**BASE, "t.txt": F("a\ntheirs\nc\n"), "bin.dat": F("\0theirs"), "n/x": F("x\n")}
del THEIRS["gone.txt"]


def conflicted(root: Path) -> tuple[History, bytes]:
    """A real repository with a conflicted merge in progress, and theirs' commit id."""
    h = History(root)
    base = h.commit(BASE, [], "basehost")
    theirs = h.commit(THEIRS, [base], "theirhost")
    h.commit(OURS, [base], "ourhost")
    h.merge(theirs)
    return h, theirs


@dataclass
class Merging:
    h: History
    real: bytes  # the state file the merge wrote

    def load(self, data: bytes) -> MergeState | None:
        """``data`` written as the merge state, then read as every command reads it."""
        (self.h.repo.control / "merge" / "state").write_bytes(data)
        return checked_load(self.h.repo)


@pytest.fixture(scope="module")
def merging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Merging]:
    h, _theirs = conflicted(tmp_path_factory.mktemp("fuzz") / "work")
    try:
        yield Merging(h, (h.repo.control / "merge" / "state").read_bytes())
    finally:
        h.close()


def seal(body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest().encode()
    return body + b"E" + struct.pack(">I", len(digest)) + digest


def checked_load(repo: Repository) -> MergeState | None:
    """MergeState.load: a state that re-encodes to itself, or a clean exit-3 error."""
    try:
        state = MergeState.load(repo)
    except DamagedRepository as exc:  # UnsupportedFormat is one too: exit 3 either way
        assert exc.exit_code == 3 and "\n" not in str(exc)
        return None
    assert state is not None
    status_codes(state)
    state.blob_ids()
    again = MergeState.from_bytes(repo.control, state.to_bytes())
    assert again.files == state.files and again.backups == state.backups
    assert (again.ours, again.theirs, again.bases) == (state.ours, state.theirs, state.bases)
    return state


def records_of(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A well-formed state file's header line and records (before the end record)."""
    nl = data.index(b"\n") + 1
    out, pos = [], nl
    while data[pos : pos + 1] != b"E":
        (n,) = struct.unpack_from(">I", data, pos + 1)
        out.append((data[pos : pos + 1], data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return data[:nl], out


def sealed(header: bytes, records: list[tuple[bytes, bytes]]) -> bytes:
    body = header + b"".join(k + struct.pack(">I", len(d)) + d for k, d in records)
    return seal(body)


HEX = "0123456789abcdef"
hex_ids = st.text(HEX, min_size=40, max_size=40)
field_text = st.one_of(
    hex_ids,
    st.builds(
        lambda m, i: f"{m} {i}", st.sampled_from(["100644", "120000", "7", "-1", "0o7"]), hex_ids
    ),
    st.sampled_from(
        ["", "u", "r", "UU", "content", "binary", "a", "../x", ".vsync/x", "/abs", "5"]
    ),
    st.text(max_size=12),
    st.just("9" * 5000),
)
record_fields = st.tuples(
    st.sampled_from([*"LOBFKDVltEZzx", "\0", "é", "1"]),
    st.lists(field_text, max_size=11),
)


@st.composite
def sealed_states(draw: st.DrawFn) -> bytes:
    """Well-framed, correctly sealed files of arbitrary records (a buggy writer)."""
    version = draw(st.sampled_from([b"1", b"0", b"2", b"01", b"9" * 5000]))
    records = [
        (kind.encode("utf-8")[:1], b"\0".join(f.encode("utf-8", "surrogateescape") for f in fields))
        for kind, fields in draw(st.lists(record_fields, max_size=10))
    ]
    return sealed(b"VSYNC-MERGESTATE " + version + b"\n", records)


def test_the_fuzzed_reader_accepts_the_real_state(merging: Merging) -> None:
    state = merging.load(merging.real)
    assert state is not None and state.unresolved() == ["bin.dat", "t.txt"]
    assert state.to_bytes() == merging.real
    header, records = records_of(merging.real)
    assert sealed(header, records) == merging.real


@FUZZ
@given(data=st.data())
def test_merge_state_reader_takes_mutated_files(merging: Merging, data: st.DataObject) -> None:
    merging.load(data.draw(mutated(st.just(merging.real))))


@FUZZ
@given(data=st.data())
def test_merge_state_reader_takes_mutated_sealed_records(
    merging: Merging, data: st.DataObject
) -> None:
    """Records changed, dropped, repeated or added, the checksum made right again."""
    header, records = records_of(merging.real)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(records)))
        how = data.draw(st.sampled_from(["mutate", "drop", "repeat", "add"]))
        if how == "mutate" and at < len(records):
            kind, payload = records[at]
            records[at] = (kind, data.draw(mutated(st.just(payload))))
        elif how == "drop" and at < len(records):
            del records[at]
        elif how == "repeat" and at < len(records):
            records.insert(at, records[at])
        elif how == "add":
            kind, fields = data.draw(record_fields)
            payload = b"\0".join(f.encode("utf-8", "surrogateescape") for f in fields)
            records.insert(at, (kind.encode("utf-8")[:1], payload))
    merging.load(sealed(header, records))


@FUZZ
@given(st.one_of(sealed_states(), st.binary(max_size=200)))
@example(b"VSYNC-MERGESTATE " + b"1" * 5000 + b"\n")
@example(sealed(b"VSYNC-MERGESTATE 1\n", [(b"t", b"1" * 5000)]))
def test_merge_state_reader_takes_any_sealed_records(merging: Merging, data: bytes) -> None:
    merging.load(data)


@pytest.mark.parametrize("damage", ["flip", "huge-version", "bad-id", "unsafe-path"])
def test_a_damaged_merge_state_stops_every_command_with_exit_3(tmp_path: Path, damage: str) -> None:
    h, theirs = conflicted(tmp_path / "work")
    h.close()
    path = h.root / ".vsync" / "merge" / "state"
    data = path.read_bytes()
    header, records = records_of(data)
    if damage == "flip":
        data = data[:40] + bytes([data[40] ^ 0x20]) + data[41:]
    elif damage == "huge-version":
        data = b"VSYNC-MERGESTATE " + b"1" * 5000 + data[len(header) - 1 :]
    elif damage == "bad-id":
        data = sealed(header, [(k, d.replace(theirs, b"z" * 40)) for k, d in records])
    else:
        data = sealed(header, [(k, d.replace(b"t.txt\0", b"../t.txt\0")) for k, d in records])
    path.write_bytes(data)
    for args in (["status"], ["resolve", "--list"], ["commit", "-m", "m"], ["merge", "--abort"]):
        r = run_vsync(*args, cwd=h.root, check=False)
        assert r.returncode == 3, (args, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("vsync: error: "), (args, r.stderr)
        assert "merge" in lines[0] and "internal error" not in lines[0]
