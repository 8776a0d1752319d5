"""A push's git objects cut into several git packs (vsync.model.gitdb.packgen.pack_parts)
for an object-store remote, and joined back into one by a fetch
(vsync.sync.crypt.gitparts.join_packs): each part is a git pack the receiver's checks
accept alone, with no delta on an object of another part; the parts are the same
bytes in every process; their join holds every object once and is accepted too."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_vsync
from dulwich.object_format import SHA1
from dulwich.pack import PackData

from vsync.model.gitdb.packgen import pack_parts
from vsync.model.gitdb.received import OFS_DELTA, PackSummary, receive_pack_file
from vsync.model.repository import Repository
from vsync.sync.crypt.errors import RemoteTampered
from vsync.sync.crypt.gitparts import join_packs

CUT = 12 * 1024


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six commits of two large files, equal at first, then each with small
    insertions of its own (each manifest a delta on the one before: the first one the
    base of two), and small files beside them."""
    work = tmp_path_factory.mktemp("parts") / "w"
    work.mkdir()
    run_vsync("init", cwd=work)
    config = work / ".vsync" / "config"
    text = config.read_text()
    for key, size in (("minSize", 1024), ("avgSize", 4096), ("maxSize", 16384)):
        text = re.sub(rf"{key} = \d+", f"{key} = {size}", text)
    config.write_text(text)  # a manifest of some 250 chunks: ~10 KiB, sent as deltas
    big = work / "big.bin"
    data = bytearray(random.Random(3).randbytes(1 << 20))
    for c in range(6):
        at = len(data) * (c + 1) // 8
        data[at:at] = b"insertion!"
        big.write_bytes(data)
        for t in range(3):
            cut = (c + 1) * (t + 1) * 1000
            twin = data if c == 0 else data[:-cut] + b"twin" + data[-cut:]
            (work / f"twin-{t}.bin").write_bytes(twin)
        for i in range(100):
            (work / f"small-{c}-{i}.txt").write_text(f"{c} {i}\n")
        run_vsync("commit", "-q", "-m", f"edit {c}", cwd=work)
    return work


def parts_of(work: Path, cut: int) -> tuple[list[bytes], list[bytes]]:
    with Repository.open_path(work) as repo:
        head = repo.head()
        assert head is not None
        sent, parts = pack_parts(repo.gitdb, [head], [], cut)
        return sent, list(parts)


def receive(path: Path, data: bytes) -> PackSummary:
    """The receiver's checks of one git pack, with no object outside it."""
    path.write_bytes(data)

    def no_base(_sha: bytes) -> tuple[int, bytes]:
        raise KeyError(_sha)

    return receive_pack_file(str(path), str(path) + ".idx", SHA1, lambda _oid: False, no_base)


def has_ofs_delta(data: bytes) -> bool:
    """Whether the pack holds an OFS_DELTA (its entries read with dulwich)."""
    pack = PackData.from_file(io.BytesIO(data), SHA1, len(data))
    try:
        return any(u.pack_type_num == OFS_DELTA for u in pack.iter_unpacked())
    finally:
        pack.close()


@pytest.mark.parametrize("cut", [CUT, 4096, 24576])
def test_parts_are_bounded_self_contained_and_join_into_one(
    history: Path, tmp_path: Path, cut: int
) -> None:
    """At 12 KiB some manifests travel as deltas inside a part; at 4 KiB a manifest
    (~8 KiB) fills a part alone, so its successor's delta base is in the part just
    cut and it goes whole; at 24 KiB the first manifest of a twin comes after its
    base's part was cut (its base went in an earlier part: it goes whole too)."""
    sent, parts = parts_of(history, cut)
    assert len(parts) >= 3, [len(p) for p in parts]
    total = 0
    for i, part in enumerate(parts):
        summary = receive(tmp_path / f"part-{i}.pack", part)  # no base outside it
        total += summary.objects
        assert len(part) <= cut or summary.objects == 1, (i, len(part), summary.objects)
    assert total == len(sent)
    if cut == CUT:
        assert any(has_ofs_delta(p) for p in parts)  # deltas inside a part are kept
    joined = tmp_path / "joined.pack"
    with open(joined, "w+b") as f:
        length = join_packs(((f"git/{i}", p) for i, p in enumerate(parts)), f)
    assert length == joined.stat().st_size
    assert receive(tmp_path / "joined-copy.pack", joined.read_bytes()).objects == len(sent)
    # one pack, as before, when the cut is large
    assert len(parts_of(history, 1 << 30)[1]) == 1


def test_parts_are_the_same_bytes_in_every_process(history: Path) -> None:
    """A killed push's re-run finds its stored parts by name only if it makes the same
    bytes: dulwich's walk follows a set's order, which changes with the hash seed."""
    script = (
        "import hashlib, sys\n"
        "from pathlib import Path\n"
        "from vsync.model.repository import Repository\n"
        "from vsync.model.gitdb.packgen import pack_parts\n"
        "with Repository.open_path(Path(sys.argv[1])) as repo:\n"
        "    _sent, parts = pack_parts(repo.gitdb, [repo.head()], [], int(sys.argv[2]))\n"
        "    for p in parts:\n"
        "        print(hashlib.sha256(p).hexdigest())\n"
    )
    digests = [
        subprocess.run(
            [sys.executable, "-c", script, str(history), str(CUT)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    ]
    assert len(digests[0].split()) >= 3
    assert digests[0] == digests[1] == digests[2]
    _sent, parts = parts_of(history, CUT)
    assert digests[0].split() == [hashlib.sha256(p).hexdigest() for p in parts]


def test_a_part_that_is_not_a_git_pack_is_refused(history: Path, tmp_path: Path) -> None:
    _sent, parts = parts_of(history, CUT)
    bad = bytearray(parts[1])
    bad[-1] ^= 1  # its trailer
    for where, data, why in [
        ("git/b", bytes(bad), "trailer"),
        ("git/c", b"PACK" + bytes(40), "version 2"),
        ("git/d", b"short", "not a git pack"),
    ]:
        with open(tmp_path / "j.pack", "w+b") as f, pytest.raises(RemoteTampered, match=why):
            join_packs([("git/a", parts[0]), (where, data)], f)
