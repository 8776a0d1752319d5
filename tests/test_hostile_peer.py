"""Hostile peers, both directions: every rule of "What a receiver verifies" and "What a
server serves" (docs/protocol.md) holds against a real process that breaks it.

- A hostile server (tests/evil_serve.py as --remote-cmd) answers `vsync pull` / `clone`.
- A hostile client (tests/evil_push.py) talks to a real `vsync serve --stdio PATH`.

For every case the victim stops with one clear line (exit 1), and nothing changed:
its refs and git objects are as before, `vsync fsck` is clean, and an honest
transfer still works afterwards.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import blake3
import hostile
import pytest
from conftest import EVIL, RemoteKind, run_vsync, snapshot_tree
from dulwich.repo import Repo

from vsync.model.repository import Repository
from vsync.sync.protocol import ProtocolError
from vsync.sync.readable import ReadableChunks

EVIL_PUSH = Path(__file__).resolve().parent / "evil_push.py"
SECRET = b"the launch code is 0000, known only to this machine\n"
SECRET_CHUNK = blake3.blake3(SECRET).hexdigest()
NOWHERE_CHUNK = "ab" * 32


@dataclass
class World:
    """a: working copy at H2 (also holds an undone commit: SECRET's chunk, unreachable);
    s1: bare at H1; s2: bare at H2; c: working clone at H1 whose origin is s2."""

    root: Path

    @property
    def a(self) -> Path:
        return self.root / "a"

    @property
    def s1(self) -> Path:
        return self.root / "s1"

    @property
    def s2(self) -> Path:
        return self.root / "s2"

    @property
    def c(self) -> Path:
        return self.root / "c"


def _build(root: Path) -> None:
    w = World(root)
    root.mkdir()
    w.a.mkdir()
    run_vsync("init", cwd=w.a)
    (w.a / "notes.txt").write_text("line one\nline two\n")
    (w.a / "photos").mkdir()
    (w.a / "photos" / "img.raw").write_bytes(random.Random(1).randbytes(200_000))
    os.symlink("notes.txt", w.a / "link")
    run_vsync("commit", "-m", "H1", cwd=w.a)
    run_vsync("clone", "--bare", w.a, w.s1, cwd=root)
    run_vsync("clone", "--bare", w.a, w.s2, cwd=root)
    run_vsync("clone", w.s2, w.c, cwd=root)
    (w.a / "secret.txt").write_bytes(SECRET)
    run_vsync("commit", "-m", "secret", cwd=w.a)
    run_vsync("undo", cwd=w.a)  # main goes back; the folder keeps the file
    (w.a / "secret.txt").unlink()
    (w.a / "notes.txt").write_text("line one\nline two changed\n")
    (w.a / "big.bin").write_bytes(random.Random(2).randbytes(1 << 20))
    run_vsync("commit", "-m", "H2", cwd=w.a)
    run_vsync("push", w.s2, cwd=w.a)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "world"
    _build(root)
    return root


@pytest.fixture
def world(template: Path, tmp_path: Path) -> World:
    root = tmp_path / "world"
    shutil.copytree(template, root, symlinks=True)
    for config in root.glob("*/.vsync/config"):  # remotes named by absolute path
        config.write_text(config.read_text().replace(str(template), str(root)))
    return World(root)


def git_dir(repo: Path) -> Path:
    return repo / ".vsync" / "git" if (repo / ".vsync").is_dir() else repo / "git"


def git_state(repo: Path) -> tuple[dict[bytes, bytes], frozenset[bytes]]:
    """Every ref and every git object id of ``repo``."""
    r = Repo(str(git_dir(repo)))
    try:
        refs = {k: v for k, v in r.get_refs().items() if k != b"HEAD"}
        return refs, frozenset(r.object_store)
    finally:
        r.close()


def fsck_clean(repo: Path) -> None:
    out = run_vsync("fsck", cwd=repo, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def one_clear_line(stderr: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


def head(repo: Path) -> bytes:
    return Repo(str(git_dir(repo))).refs[b"refs/heads/main"]


# -- a hostile server answering pull --------------------------------------------------

SERVER_MODES = [
    *(f"object:{case}" for case in hostile.OBJECT_CASES),
    *(f"pack:{case}" for case in hostile.PACK_CASES),
    "bad-pack",
    "bad-chunk",
    "chunk:unasked",
    "chunk:out-of-order",
    "chunk:extra",
    "oid:refs",
    "oid:acks",
]


def evil_cmd(mode: str) -> list[str]:
    return ["--remote-cmd", f"{sys.executable} {EVIL} {mode}"]


@pytest.mark.parametrize("mode", SERVER_MODES)
def test_hostile_server_changes_nothing(world: World, mode: str) -> None:
    before, files = git_state(world.c), snapshot_tree(world.c)
    out = run_vsync("pull", *evil_cmd(mode), cwd=world.c, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    one_clear_line(out.stderr)
    assert git_state(world.c) == before
    assert snapshot_tree(world.c) == files
    fsck_clean(world.c)
    run_vsync("pull", cwd=world.c)  # the honest server still works
    assert head(world.c) == head(world.s2)
    assert (world.c / "big.bin").stat().st_size == 1 << 20


@pytest.mark.parametrize("mode", ["object:hidden", "object:tip-is-tree", "pack:count-zero"])
def test_hostile_server_clone_leaves_nothing(world: World, mode: str) -> None:
    dest = world.root / "fresh"
    out = run_vsync("clone", world.s2, dest, *evil_cmd(mode), cwd=world.root, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    one_clear_line(out.stderr)
    assert not dest.exists()


def test_hidden_objects_never_reach_a_ref(world: World) -> None:
    """Issue 10: objects no tip reaches are not stored, so a later advertisement of
    them finds nothing to move a ref to (before: the fetch said "up to date" and the
    pull moved main onto a commit with case twins, a non-manifest and a missing chunk)."""
    before = git_state(world.c)
    out = run_vsync("pull", *evil_cmd("pack:extra-object"), cwd=world.c, check=False)
    assert out.returncode == 1 and "reach" in out.stderr, out.stderr
    assert git_state(world.c) == before
    out = run_vsync("pull", *evil_cmd("object:hidden-unsent"), cwd=world.c, check=False)
    assert out.returncode == 1, out.stderr
    one_clear_line(out.stderr)
    assert git_state(world.c) == before
    fsck_clean(world.c)


def test_hostile_server_over_ssh(sshd_server: object, world: World) -> None:
    remote = RemoteKind("ssh", sshd_server)
    before = git_state(world.c)
    url = remote.url(world.s2)
    for mode in ("pack:extra-object", "object:case-twins"):
        out = remote.run("pull", url, *remote.cmd(mode), cwd=world.c, check=False)
        assert out.returncode == 1, out.stdout + out.stderr
        one_clear_line(out.stderr)
        assert git_state(world.c) == before
    fsck_clean(world.c)


# -- a hostile client pushing to (or fetching from) a real server ------------------------


def evil_push(
    mode: str,
    source: Path,
    url: str,
    remote_cmd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    args = [sys.executable, str(EVIL_PUSH), mode, str(source), url]
    if remote_cmd:
        args.append(remote_cmd)
    full_env = {**os.environ, "VSYNC_EVIL_CHUNK": SECRET_CHUNK, **(env or {})}
    proc = subprocess.run(args, capture_output=True, env=full_env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def assert_refused(report: dict[str, object]) -> None:
    assert report["outcome"] == "refused", report
    message = str(report["message"])
    assert message and "\n" not in message, report
    assert report["server_exit"] == 1, report
    stderr = str(report["server_stderr"])
    assert "Traceback" not in stderr and "internal error" not in stderr, report


def honest_clone_works(world: World, server: Path) -> None:
    fsck_clean(server)
    dest = world.root / "check"
    run_vsync("clone", server, dest, cwd=world.root)
    assert (dest / "notes.txt").read_text().startswith("line one")
    fsck_clean(dest)


PUSH_MODES = [
    *(f"object:{case}" for case in hostile.OBJECT_CASES),
    *(f"pack:{case}" for case in hostile.PACK_CASES),
    "push-hidden",
    "chunk:bad",
    "chunk:unasked",
    "chunk:out-of-order",
    "chunk:extra",
    "oid:push-new",
    "oid:push-old",
    "oid:update-ref",
    "oid:haves",
]


def test_honest_evil_push_is_accepted(world: World) -> None:
    """The hostile pusher's honest mode works, so its refusals below mean something."""
    report = evil_push("honest", world.a, str(world.s1))
    assert report["outcome"] == "accepted" and report["server_exit"] == 0, report
    assert head(world.s1) == head(world.a)
    honest_clone_works(world, world.s1)


@pytest.mark.parametrize("mode", PUSH_MODES)
def test_hostile_pusher_changes_nothing(world: World, mode: str) -> None:
    before = git_state(world.s1)
    assert_refused(evil_push(mode, world.a, str(world.s1)))
    assert git_state(world.s1) == before
    honest_clone_works(world, world.s1)
    run_vsync("push", world.s1, cwd=world.a)  # an honest push still works
    assert head(world.s1) == head(world.a)


def test_pusher_cannot_plant_a_hidden_commit(world: World) -> None:
    """Issue 10: a restricted pusher sent an unreachable commit, then pushed main onto it."""
    before = git_state(world.s1)
    assert_refused(evil_push("pack:extra-object", world.a, str(world.s1)))
    assert_refused(evil_push("push-hidden", world.a, str(world.s1)))
    assert git_state(world.s1) == before
    honest_clone_works(world, world.s1)


def test_hostile_pusher_over_ssh(sshd_server: object, world: World) -> None:
    remote = RemoteKind("ssh", sshd_server)
    before = git_state(world.s1)
    for mode in ("pack:extra-object", "oid:push-new"):
        report = evil_push(
            mode,
            world.a,
            remote.url(world.s1),
            remote.sshd.remote_cmd,
            remote.env,  # type: ignore[union-attr]
        )
        assert_refused(report)
    assert git_state(world.s1) == before
    honest_clone_works(world, world.s1)


# -- what a server serves ------------------------------------------------------------------


def test_fetcher_cannot_probe_for_unreachable_chunks(world: World) -> None:
    """A chunk no advertised ref reaches (here: of an undone commit) is refused exactly
    like one that does not exist, so a peer cannot learn whether content is present."""
    assert run_vsync("fsck", cwd=world.a).returncode == 0
    present = evil_push("probe-chunk", world.a, str(world.a))
    absent = evil_push(
        "probe-missing", world.a, str(world.a), env={"VSYNC_EVIL_CHUNK": NOWHERE_CHUNK}
    )
    assert_refused(present)
    assert_refused(absent)
    assert present["message"] == absent["message"]


def test_fetcher_gets_reachable_chunks_outside_the_pack(world: World) -> None:
    """A chunk reachable from an advertised ref is served even when the pack just sent
    does not name it (a resumed transfer, a repair)."""
    repo = Repo(str(git_dir(world.a)))
    tree = repo[repo[repo.refs[b"refs/heads/main"]].tree]
    manifest = repo[tree[b"big.bin"][1]].as_raw_string()
    repo.close()
    chunk = manifest[20:52].hex()
    report = evil_push("probe-reachable", world.a, str(world.a), env={"VSYNC_EVIL_CHUNK": chunk})
    assert report["outcome"] == "accepted" and report["server_exit"] == 0, report


def test_server_cannot_probe_a_pushing_client(world: World) -> None:
    """During a push the client serves only chunks reachable from what it pushes."""
    before = git_state(world.s1)
    out = run_vsync(
        "push",
        world.s1,
        *evil_cmd("probe-chunk"),
        cwd=world.a,
        check=False,
        env={"VSYNC_EVIL_CHUNK": SECRET_CHUNK},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    one_clear_line(out.stderr)
    assert git_state(world.s1) == before


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("want-total:negative", "malformed count in WANT_TOTAL"),
        ("want-total:twice", "expected CHUNK_WANT or CHUNK_WANT_END, got WANT_TOTAL"),
        ("want-total:unlisted", "expected CHUNK_WANT or CHUNK_WANT_END, got WANT_TOTAL"),
    ],
)
def test_a_servers_want_total_is_checked(world: World, mode: str, said: str) -> None:
    """WANT_TOTAL (want-total-v1) only feeds a progress line, and still must be well
    formed and come once: else one clear line, exit 1, the server's branch unmoved."""
    before = git_state(world.s1)
    out = run_vsync("push", world.s1, *evil_cmd(mode), cwd=world.a, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    one_clear_line(out.stderr)
    assert said in out.stderr
    assert git_state(world.s1) == before


class CountingReadable(ReadableChunks):
    walks = 0

    def _walk(self, within: object) -> None:  # type: ignore[override]
        self.walks += 1
        super()._walk(within)  # type: ignore[arg-type]


def test_readable_chunks_walk_history_at_most_once(world: World) -> None:
    """The pack's chunks are the first check; one walk of everything the tips reach
    answers the rest, however many CHUNK_WANTs follow."""
    with Repository.open_path(world.a) as repo:
        db = repo.gitdb
        tip = repo.head()
        assert tip is not None
        tree_id = db.commit(tip).tree
        tree = db.tree(tree_id)
        big_id, notes_id = tree.get(b"big.bin")[2], tree.get(b"notes.txt")[2]  # type: ignore[index]
        big = db.manifest(big_id).chunks
        notes = db.manifest(notes_id).chunks
        sent = [tip, tree_id, big_id]
        with CountingReadable(repo, [tip], sent) as readable:
            readable.check([cid for cid, _n in big])  # in the pack: no walk of history
            assert readable.walks == 1
            readable.check([notes[0][0]])  # reachable, not in the pack: one walk
            readable.check([big[0][0], notes[0][0]])
            assert readable.walks == 2
            for unreadable in (bytes.fromhex(SECRET_CHUNK), bytes.fromhex(NOWHERE_CHUNK)):
                with pytest.raises(ProtocolError, match="refusing"):
                    readable.check([big[0][0], unreadable])
            assert readable.walks == 2
