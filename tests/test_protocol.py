"""Framing rules of docs/protocol.md over real OS pipes."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import pytest
from conftest import run_vsync

from vsync.sync import protocol as p
from vsync.sync.fdpipe import FdPipe
from vsync.sync.protocol import Connection, ProtocolError, RemoteError


def pair() -> tuple[Connection, Connection]:
    a_r, b_w = os.pipe()
    b_r, a_w = os.pipe()
    return Connection(FdPipe(a_r, a_w)), Connection(FdPipe(b_r, b_w))


def raw_frame(mtype: int, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack(">IB", len(payload) if length is None else length, mtype) + payload


def test_json_and_binary_messages_round_trip() -> None:
    a, b = pair()
    a.send_json(p.REFS, {"refs": {"refs/heads/main": "a" * 40}})
    a.send(p.CHUNK, p.encode_chunk(b"\1" * 32, 1, 1234, b"payload"))
    a.flush()
    assert b.expect(p.REFS).json() == {"refs": {"refs/heads/main": "a" * 40}}
    assert p.decode_chunk(b.expect(p.CHUNK).payload) == (b"\1" * 32, 1, 1234, b"payload")


def test_a_chunk_is_read_as_its_head_and_payload() -> None:
    """recv_chunk: what decode_chunk gives, optional frames (known and unknown) skipped;
    an ERROR raises, another message is named, a short or oversized CHUNK is refused."""
    a, b = pair()
    a.send(p.PROGRESS, b'{"done": 1}')
    a.pipe.write(raw_frame(0xC7, b"future hint"))
    a.send_parts(p.CHUNK, p.CHUNK_HEAD.pack(b"\1" * 32, 1, 1234), b"payload")
    a.send(p.CHUNK, p.encode_chunk(b"\2" * 32, 0, 0, b""))
    a.send_json(p.CHUNKS_END, {})
    a.flush()
    assert b.recv_chunk() == (b"\1" * 32, 1, 1234, b"payload")
    assert b.recv_chunk() == (b"\2" * 32, 0, 0, b"")
    with pytest.raises(ProtocolError, match="expected CHUNK, got CHUNKS_END"):
        b.recv_chunk()
    refusals: list[tuple[bytes, type[Exception], str]] = [
        (raw_frame(p.CHUNK, b"\0" * (p.CHUNK_HEAD.size - 1)), ProtocolError, "truncated CHUNK"),
        (raw_frame(p.CHUNK, b"", length=p.MAX_FRAME[p.CHUNK] + 1), ProtocolError, "limit"),
        (raw_frame(p.ERROR, b'{"message": "its own words"}'), RemoteError, "its own words"),
    ]
    for frame, error, words in refusals:
        a, b = pair()
        a.pipe.write(frame)
        a.flush()
        with pytest.raises(error, match=words):
            b.recv_chunk()


def test_optional_unknown_messages_are_skipped() -> None:
    a, b = pair()
    a.pipe.write(raw_frame(0xC7, b"future hint"))
    a.send(p.BYE)
    a.flush()
    assert b.recv().type == p.BYE


def test_unknown_mandatory_message_stops_with_a_clear_error() -> None:
    a, b = pair()
    a.pipe.write(raw_frame(0x55, b""))
    a.flush()
    with pytest.raises(ProtocolError, match="unknown mandatory message type 0x55"):
        b.recv()


def test_oversized_frame_is_refused() -> None:
    a, b = pair()
    a.pipe.write(raw_frame(p.PACK_DATA, b"", length=p.MAX_PAYLOAD + 1))
    a.flush()
    with pytest.raises(ProtocolError, match="limit"):
        b.recv()


def test_peer_error_message_surfaces() -> None:
    a, b = pair()
    a.send_error("not a vsync repository on the remote")
    with pytest.raises(RemoteError, match="not a vsync repository"):
        b.recv()


def test_unexpected_message_is_named() -> None:
    a, b = pair()
    a.send(p.BYE)
    a.flush()
    with pytest.raises(ProtocolError, match="expected REFS, got BYE"):
        b.expect(p.REFS)


def test_large_writes_do_not_deadlock_both_directions() -> None:
    a, b = pair()
    blob = os.urandom(3 << 20)

    def writer() -> None:
        for i in range(0, len(blob), p.PACK_DATA_BYTES):
            a.send(p.PACK_DATA, blob[i : i + p.PACK_DATA_BYTES])
        a.flush()

    t = threading.Thread(target=writer)
    t.start()
    assert b"".join(b.expect(p.PACK_DATA).payload for _ in range(3)) == blob
    t.join()


def test_frames_of_every_size_arrive_whole_across_reads() -> None:
    """The server's pipe slices messages out of what it has read and joins those that
    run past it: frames from 0 bytes to several reads long, back to back, arrive whole
    and in order, and one message's tail never leaks into the next."""
    a, b = pair()
    sizes = [0, 1, 5, 40_000, 65_535, 65_536, 65_537, 300_000, 7, 1_500_000, 3, 999_999]
    payloads = [os.urandom(n) for n in sizes]

    def writer() -> None:
        for payload in payloads:
            a.send(p.OBJ_DATA if len(payload) <= p.PACK_DATA_BYTES else p.CHUNK, payload)
        a.send(p.BYE)
        a.flush()

    t = threading.Thread(target=writer)
    t.start()
    got = [b.recv().payload for _ in payloads]
    assert b.recv().type == p.BYE
    t.join()
    assert [len(g) for g in got] == sizes
    assert got == payloads
    assert all(isinstance(g, bytes) for g in got)


def test_frames_made_ahead_are_read_like_sent_ones() -> None:
    """frame_into + send_framed (the offer's batches) put the same bytes on the wire as
    send_parts, and the frame copies its parts: changing a part afterwards changes
    nothing sent."""
    a, b = pair()
    buf = bytearray(os.urandom(200_000))
    frames = bytearray()
    head = p.CHUNK_HEAD.pack(b"\2" * 32, 0, len(buf))
    p.frame_into(frames, p.OFFER_CHUNK, head, memoryview(buf))
    p.frame_into(frames, p.OFFER_END, b"{}")
    original = bytes(buf)
    buf[:] = bytes(len(buf))  # the commit reuses its block buffer
    a.send_framed(frames)
    a.flush()
    cid, compression, raw_len, payload = p.decode_chunk_view(b.expect(p.OFFER_CHUNK).payload)
    assert (cid, compression, raw_len, bytes(payload)) == (b"\2" * 32, 0, 200_000, original)
    assert b.expect(p.OFFER_END).json() == {}
    with pytest.raises(ValueError, match="over"):
        p.frame_into(bytearray(), p.OFFER_END, b"x" * (p.CONTROL_BYTES + 1))


def test_server_refuses_a_foreign_hello(tmp_path: Path) -> None:
    """A client that does not speak vsync gets an ERROR frame, not a traceback."""
    run_vsync("init", "--bare", tmp_path / "r", cwd=tmp_path)
    hello = b'{"protocol": "git", "version": 1}'
    out = run_vsync(
        "serve",
        "--stdio",
        tmp_path / "r",
        cwd=tmp_path,
        input=raw_frame(p.HELLO, hello),
        check=False,
    )
    assert out.returncode == 1
    length, mtype = struct.unpack(">IB", out.stdout_bytes[:5])
    assert mtype == p.ERROR
    assert b"does not speak the vsync protocol" in out.stdout_bytes[5 : 5 + length]
    assert "Traceback" not in out.stderr


def test_restrict_to_refuses_other_repositories(tmp_path: Path) -> None:
    run_vsync("init", "--bare", tmp_path / "allowed" / "r", cwd=tmp_path)
    run_vsync("init", "--bare", tmp_path / "other", cwd=tmp_path)
    hello = raw_frame(p.HELLO, b'{"protocol": "vsync", "version": 1, "role": "client"}')
    out = run_vsync(
        "serve",
        "--stdio",
        "--restrict-to",
        tmp_path / "allowed",
        tmp_path / "other",
        cwd=tmp_path,
        input=hello,
        check=False,
    )
    assert out.returncode == 2
    assert b"outside the folder" in out.stdout_bytes
    ok = run_vsync(
        "serve",
        "--stdio",
        "--restrict-to",
        tmp_path / "allowed",
        tmp_path / "allowed" / "r",
        cwd=tmp_path,
        input=hello + raw_frame(p.BYE, b""),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "value",
    ["g" * 40, "A" * 40, "a" * 39, "a" * 41, " " + "a" * 39, "a" * 39 + "\n", 40, None, ["a" * 40]],
    ids=repr,
)
def test_a_malformed_object_id_is_a_clean_protocol_error(value: object) -> None:
    with pytest.raises(ProtocolError, match="malformed object id in REFS"):
        p.parse_oid(value, "REFS")
    with pytest.raises(ProtocolError):
        p.parse_oids(["0" * 40, value], "ACKS")


def test_object_ids_parse_to_ascii_hex() -> None:
    assert (
        p.parse_oid("0123456789abcdef" * 2 + "01234567", "PUSH")
        == b"0123456789abcdef" * 2 + b"01234567"
    )
    assert p.parse_oids([], "HAVES") == []


@pytest.mark.parametrize("value", [-1, True, "3", 2.0, None])
def test_a_count_must_be_a_non_negative_integer(value: object) -> None:
    with pytest.raises(ProtocolError, match="PACK_END"):
        p.parse_count(value, "PACK_END")
