"""A hostile peer cannot exhaust memory or CPU (issue 10, "Memory and CPU exhaustion").

Both directions, with real processes: a hostile server (tests/hostile_peer.py as
``--remote-cmd``) answering ``vsync fetch``, ``clone`` and ``pull``; a hostile
pusher or fetcher speaking to a real ``vsync serve --stdio`` (through
``--restrict-to``, as a restricted key would). Each bomb must end with one
clear error and exit 1, the receiving process must stay under LIMIT_MIB of
peak RSS, and nothing may change: no ref moved, no object or chunk added, fsck
clean. Hypothesis then feeds random and mutated packs to the bounded pack
receiver, random frames to the chunk decoder and random bytes to the manifest
parser: only their clean errors, never another exception.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import hostile_peer as hp
import packcraft as pc
import pytest
from conftest import run_vsync
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

LIMIT_MIB = 200
HOSTILE = Path(hp.__file__).resolve()
VSYNC = [sys.executable, "-m", "vsync"]
ENV = {"VSYNC_AUTHOR_NAME": "T", "VSYNC_AUTHOR_EMAIL": "t@example.com", "VSYNC_HOST": "h"}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bomb of hostile_peer.BOMB_MODES, built once: mode -> saved script."""
    root = tmp_path_factory.mktemp("bombs")
    return {m: hp.build(m, root / m).save(root / f"{m}.json") for m in hp.BOMB_MODES}


def _repo(root: Path) -> Path:
    root.mkdir()
    run_vsync("init", cwd=root)
    (root / "notes.txt").write_text("mine\n")
    (root / "data.bin").write_bytes(os.urandom(300_000))
    run_vsync("commit", "-m", "first", cwd=root)
    return root


def _state(control: Path) -> dict[str, int]:
    """Every file of the git database and the chunk store, with its size."""
    out = {}
    for top in ("git", "chunks"):
        for dirpath, _dirs, files in os.walk(control / top):
            for name in files:
                path = Path(dirpath) / name
                out[str(path.relative_to(control))] = path.stat().st_size
    return out


def _unchanged(root: Path, control: Path, before: dict[str, int]) -> None:
    assert _state(control) == before
    incoming = control / "incoming"
    assert not incoming.exists() or not list(incoming.iterdir())
    out = run_vsync("fsck", cwd=root, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vsync: error: "), stderr


def _hostile_cmd(script: Path) -> str:
    return f"{sys.executable} {HOSTILE} serve {script}"


# -- a hostile server ------------------------------------------------------------------


@pytest.mark.parametrize("mode", hp.BOMB_MODES)
def test_fetch_from_a_hostile_server_is_bounded(
    mode: str, scripts: dict[str, Path], tmp_path: Path
) -> None:
    work = _repo(tmp_path / "work")
    before = _state(work / ".vsync")
    argv = [*VSYNC, "fetch", str(tmp_path / "remote"), "--remote-cmd", _hostile_cmd(scripts[mode])]
    rc, _out, err, peak = hp.maxrss_of(argv, work, {**os.environ, **ENV})
    assert rc == 1, err
    _one_line_error(err)
    assert peak < LIMIT_MIB, f"{mode}: the fetching client peaked at {peak:.0f} MiB"
    _unchanged(work, work / ".vsync", before)


@pytest.mark.parametrize(("command", "mode"), [("clone", "zstd-bomb"), ("pull", "delta-bomb")])
def test_clone_and_pull_from_a_hostile_server_are_bounded(
    command: str, mode: str, scripts: dict[str, Path], tmp_path: Path
) -> None:
    work = _repo(tmp_path / "work")
    before = _state(work / ".vsync")
    remote = str(tmp_path / "remote")
    target = [remote, str(tmp_path / "copy")] if command == "clone" else [remote]
    argv = [*VSYNC, command, *target, "--remote-cmd", _hostile_cmd(scripts[mode])]
    rc, _out, err, peak = hp.maxrss_of(argv, work, {**os.environ, **ENV})
    assert rc == 1, err
    _one_line_error(err)
    assert peak < LIMIT_MIB, f"{command} {mode}: peaked at {peak:.0f} MiB"
    assert not (tmp_path / "copy").exists()
    _unchanged(work, work / ".vsync", before)
    assert (work / "notes.txt").read_text() == "mine\n"


# -- a hostile pusher or fetcher against a real `vsync serve` ---------------------------


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A bare repository with one commit under tmp/keys (the restricted key's folder)."""
    work = _repo(tmp_path / "work")
    (tmp_path / "keys").mkdir()
    run_vsync("push", str(tmp_path / "keys" / "srv"), "--create", cwd=work)
    return tmp_path / "keys" / "srv"


@pytest.mark.parametrize("mode", hp.BOMB_MODES)
def test_push_by_a_hostile_client_is_bounded(
    mode: str, scripts: dict[str, Path], served: Path
) -> None:
    before = _state(served)
    outcome = hp.push(served, hp.load(str(scripts[mode])), restrict_to=served.parent)
    assert outcome.returncode == 1, outcome
    assert "Traceback" not in outcome.stderr
    if mode != "many-entries":  # there the pusher itself gives up, having no chunks
        assert outcome.error and "\n" not in outcome.error, outcome
    assert outcome.maxrss_mib < LIMIT_MIB, f"{mode}: serve peaked at {outcome.maxrss_mib:.0f} MiB"
    _unchanged(served, served, before)


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("haves-frame", "HAVES frame"),
        ("haves-rounds", "more than 4096"),
        ("want-frame", "CHUNK_WANT frame"),
    ],
)
def test_fetch_by_a_hostile_client_is_bounded(served: Path, mode: str, words: str) -> None:
    before = _state(served)
    outcome = hp.fetch_flood(served, mode)
    assert outcome.returncode == 1, outcome
    assert words in outcome.error, outcome
    assert outcome.maxrss_mib < LIMIT_MIB, f"{mode}: serve peaked at {outcome.maxrss_mib:.0f} MiB"
    _unchanged(served, served, before)


# -- too little memory: one clear error, never a crash -----------------------------------

ADDRESS_SPACE_MIB = 110  # enough to start vsync and talk, not to hold two 36 MiB manifests


def test_fetch_short_of_memory_ends_with_one_clear_error(
    scripts: dict[str, Path], tmp_path: Path
) -> None:
    work = _repo(tmp_path / "work")
    before = _state(work / ".vsync")
    cmd = _hostile_cmd(scripts["many-entries"])
    argv = [*VSYNC, "fetch", str(tmp_path / "remote"), "--remote-cmd", cmd]
    rc, _out, err, _peak = hp.maxrss_of(argv, work, {**os.environ, **ENV}, ADDRESS_SPACE_MIB)
    assert rc == 1, err
    _one_line_error(err)
    assert "memory" in err and "MemoryError" not in err, err
    _unchanged(work, work / ".vsync", before)


def test_serve_short_of_memory_ends_with_one_clear_error(
    scripts: dict[str, Path], served: Path
) -> None:
    before = _state(served)
    script = hp.load(str(scripts["many-entries"]))
    outcome = hp.push(served, script, served.parent, ADDRESS_SPACE_MIB)
    assert outcome.returncode == 1, outcome
    assert "Traceback" not in outcome.stderr
    assert "memory" in outcome.error and "MemoryError" not in outcome.error, outcome
    _unchanged(served, served, before)


# -- the limits as the honest side meets them -------------------------------------------


def _small_chunks(work: Path) -> None:
    """The smallest chunking allowed (64 / 256 / 1024): zeros cut into 1 KiB chunks."""
    config = work / ".vsync" / "config"
    text = config.read_text()
    for key, size in (("minSize", 64), ("avgSize", 256), ("maxSize", 1024)):
        text = re.sub(rf"{key} = \d+", f"{key} = {size}", text)
    config.write_text(text)


def test_a_file_over_the_chunk_count_limit_is_not_committed(tmp_path: Path) -> None:
    """A manifest may list 2**20 chunks (docs/format.md): a bigger file stops the
    commit with one clear error instead of making a repository that cannot sync."""
    work = tmp_path / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    _small_chunks(work)
    with open(work / "huge.img", "wb") as f:
        f.truncate(1024 * ((1 << 20) + 1))  # zeros: one 1 KiB chunk past the limit
    out = run_vsync("commit", "-m", "huge", cwd=work, check=False)
    assert out.returncode == 2, out.stderr
    _one_line_error(out.stderr)
    assert "'huge.img' needs more than 1,048,576 chunks" in out.stderr
    assert run_vsync("log", cwd=work).stdout == ""


def test_chunking_beyond_the_format_maximum_is_a_clear_error(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    config = work / ".vsync" / "config"
    config.write_text(re.sub(r"maxSize = \d+", "maxSize = 33554432", config.read_text()))
    (work / "a.txt").write_text("a\n")
    out = run_vsync("commit", "-m", "a", cwd=work, check=False)
    assert out.returncode == 2
    _one_line_error(out.stderr)
    assert "16777216-byte chunk maximum" in out.stderr


def test_a_long_history_of_one_manifest_pushes_within_the_depth_limit(tmp_path: Path) -> None:
    """The sender keeps within the receiver's limits: 55 commits each changing one
    file go as a chain of deltas, cut (one sent whole) before MAX_DELTA_DEPTH."""
    from vsync.model.repository import Repository
    from vsync.ops.commit import commit

    work = tmp_path / "work"
    work.mkdir()
    run_vsync("init", cwd=work)
    _small_chunks(work)
    data = bytearray(os.urandom(40 * 320))  # ~40 chunks, a manifest of ~1.4 KiB: deltas
    with Repository.open_path(work) as repo:
        for i in range(55):
            data[320 * (i % 40)] ^= 0xFF
            (work / "big.bin").write_bytes(data)
            assert commit(repo, f"v{i}", lambda _m: None).commit_id is not None
    run_vsync("push", str(tmp_path / "srv"), "--create", cwd=work)
    run_vsync("clone", str(tmp_path / "srv"), tmp_path / "copy", cwd=tmp_path)
    assert (tmp_path / "copy" / "big.bin").read_bytes() == data


# -- fuzzing -----------------------------------------------------------------------------

_BLOB_DATA = st.binary(max_size=300)
THEIRS = b"an object the receiver already has\n"
THEIRS_ID = pc.git_object_id(pc.BLOB, THEIRS)


@st.composite
def _packs(draw: st.DrawFn) -> list[pc.Entry]:
    """A small pack: whole objects and deltas (valid or not) against earlier ones."""
    entries: list[pc.Entry] = []
    sizes: list[int] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["blob", "tree", "commit", "delta", "ref"]))
        if kind == "ref":  # against an object the receiver has (THEIRS), or another id
            base_id = draw(st.sampled_from([THEIRS_ID, bytes(20)]))
            n = len(THEIRS)
            result = draw(st.integers(1, 64))
            ops = pc.copy_op(0, min(result, n)) + pc.insert_op(b"x" * max(0, result - n))
            if draw(st.booleans()):
                n = draw(st.integers(0, 1 << 40))  # a lie about the base
            entries.append(pc.Entry(pc.REF_DELTA, pc.delta(n, result, ops), base=base_id))
            sizes.append(result)
        elif kind == "delta" and entries:
            base = draw(st.integers(0, len(entries) - 1))
            n = sizes[base]
            ops = b""
            result = 0
            for _op in range(draw(st.integers(0, 4))):
                if n and draw(st.booleans()):
                    off = draw(st.integers(0, n - 1))
                    size = draw(st.integers(1, n - off))
                    ops += pc.copy_op(off, size)
                    result += size
                else:
                    lit = draw(st.binary(min_size=1, max_size=40))
                    ops += pc.insert_op(lit)
                    result += len(lit)
            if draw(st.booleans()):
                result = draw(st.integers(0, 1 << 40))  # a lie about the result
            entries.append(pc.Entry(pc.OFS_DELTA, pc.delta(n, result, ops), base=base))
            sizes.append(result)
        else:
            type_num = {"blob": pc.BLOB, "tree": pc.TREE, "commit": pc.COMMIT}.get(kind, pc.BLOB)
            data = draw(_BLOB_DATA)
            size = draw(st.one_of(st.none(), st.integers(0, 1 << 40)))
            entries.append(pc.Entry(type_num, data, size=size))
            sizes.append(len(data) if size is None else size)
    return entries


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["flip", "cut", "insert", "reseal"]))
        if what == "flip" and out:
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
        elif what == "cut" and out:
            del out[draw(st.integers(0, len(out) - 1)) :]
        elif what == "insert":
            i = draw(st.integers(0, len(out)))
            out[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif what == "reseal" and len(out) > 20:
            out[-20:] = hashlib.sha1(out[:-20]).digest()
    if len(out) > 20 and draw(st.integers(0, 9)):  # mostly a valid checksum over the damage
        out[-20:] = hashlib.sha1(out[:-20]).digest()
    return bytes(out)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzzed_packs_get_only_clean_refusals(data: st.DataObject, tmp_path: Path) -> None:
    from dulwich.object_format import DEFAULT_OBJECT_FORMAT

    from vsync.errors import DamagedRepository
    from vsync.model.gitdb.received import PackRefused, receive_pack_file

    entries = data.draw(_packs())
    raw = pc.build_pack(entries, count=data.draw(st.one_of(st.none(), st.integers(0, 9))))
    raw = _mutate(raw, data.draw)
    pack, idx = tmp_path / "f.pack", tmp_path / "f.idx"
    pack.write_bytes(raw)
    idx.unlink(missing_ok=True)

    def get_raw(oid: bytes) -> tuple[int, bytes]:
        if oid != THEIRS_ID:
            raise KeyError(oid)
        return pc.BLOB, THEIRS

    try:
        summary = receive_pack_file(
            str(pack), str(idx), DEFAULT_OBJECT_FORMAT, lambda oid: oid == THEIRS_ID, get_raw
        )
    except (PackRefused, DamagedRepository) as exc:
        event("refused: " + re.sub(r"[0-9a-f]{40}|\d+", "N", str(exc).split("refused: ")[-1])[:60])
        return
    event("indexed")
    assert summary.objects == int.from_bytes(raw[8:12], "big")
    assert idx.stat().st_size > 0


@settings(max_examples=2000, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda n, with_size: hp.zstd_bomb(n, with_size),
            st.integers(0, 1 << 20),
            st.booleans(),
        ),
    ),
    raw_len=st.integers(0, (1 << 32) - 1),
    compression=st.integers(0, 3),
)
def test_fuzzed_chunks_get_only_clean_refusals(
    payload: bytes, raw_len: int, compression: int
) -> None:
    from vsync.errors import ChunkCorrupt
    from vsync.store import codec

    try:
        codec.decode(compression, payload, raw_len, b"\0" * 32, "fuzz")
    except ChunkCorrupt:
        return
    raise AssertionError("a chunk whose id is zeros decoded")


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=400), count=st.integers(0, (1 << 32) - 1), keep=st.booleans())
def test_fuzzed_manifests_get_only_clean_refusals(data: bytes, count: int, keep: bool) -> None:
    from vsync.errors import DamagedRepository
    from vsync.model.manifest import HEAD, Manifest

    if keep and len(data) >= HEAD.size:  # a plausible header over random entries
        data = b"VSMF\x01" + data[5:16] + count.to_bytes(4, "big") + data[20:]
    try:
        m = Manifest.from_bytes(data)
    except DamagedRepository:
        return
    assert m.to_bytes() == data
    assert sum(n for _c, n in m.chunks) == m.size
