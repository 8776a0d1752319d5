"""The fsmonitor (issue 13): status and commit ask a running watcher what changed.

Real ``vsync watch --monitor-only`` subprocesses, real files, real inotify. That a
status took the watcher's word (and not a walk) is seen through the one change a
watcher cannot see: a file edited in place through a hard link from outside the
folder (inotify reports events on the folder of the name used). Such an edit is
"clean" to a status that asked the watcher and " M" to one that walked.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import VSYNC, racy_wait, run_vsync, wait_for

from vsync.model import fsmonitor
from vsync.model.statcache import read_header

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


class Monitor:
    """``vsync watch --monitor-only`` in ``folder``; its event lines go to a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.out = folder.parent / f"monitor-{time.monotonic_ns()}.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [*VSYNC, "watch", "--monitor-only"],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_line("state=watching")

    def lines(self) -> list[str]:
        return self.out.read_text(errors="replace").splitlines()

    def wait_line(self, text: str, count: int = 1) -> None:
        def seen() -> bool:
            lines = [line for line in self.lines() if text in line]
            assert self.proc.poll() is None or len(lines) >= count, self.out.read_text()
            return len(lines) >= count

        wait_for(f"{text!r} in the watcher's output", seen)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    started: list[Monitor] = []
    yield started
    for m in started:
        m.stop()


def vs(folder: Path, *args: str) -> str:
    return run_vsync(*args, cwd=folder).stdout


def porcelain(folder: Path) -> list[str]:
    return vs(folder, "status", "--porcelain").splitlines()


def make_folder(tmp: Path, name: str = "work") -> Path:
    root = tmp / name
    (root / "docs" / "old").mkdir(parents=True)
    run_vsync("init", cwd=root)
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    (root / "docs" / "c.txt").write_text("gamma\n")
    (root / "docs" / "old" / "d.txt").write_text("delta\n")
    (root / ".vsyncignore").write_text("*.tmp\n")
    vs(root, "commit", "-q", "-m", "start")
    return root


def settle_racy() -> None:
    """Past the stat cache's racy window, so cached entries are trusted."""
    time.sleep(racy_wait())


def outside_edit(root: Path, tmp: Path, name: str) -> None:
    """Edit ``name`` in place through a hard link outside the folder: no event."""
    link = tmp / f"outside-{name.replace('/', '-')}"
    if not link.exists():
        os.link(root / name, link)
    with open(link, "r+b") as f:
        data = f.read()
        f.seek(0)
        f.write(data.upper())


def started(monitors: list[Monitor], root: Path) -> Monitor:
    m = Monitor(root)
    monitors.append(m)
    porcelain(root)  # the first status walks, and records the watcher's token
    assert read_header(root / ".vsync" / "statcache") is not None
    return m


def test_status_asks_the_watcher_and_sees_every_kind_of_change(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    root = make_folder(tmp_path)
    settle_racy()
    started(monitors, root)
    # Taken on the watcher's word: the unseen edit is not looked at.
    outside_edit(root, tmp_path, "b.txt")
    assert porcelain(root) == []
    # Edits made immediately before each status are all in its answer.
    (root / "a.txt").write_text("alpha, edited\n")
    assert porcelain(root) == [" M a.txt"]
    (root / "new.txt").write_text("new\n")
    (root / "x.tmp").write_text("ignored\n")
    os.unlink(root / "docs" / "c.txt")
    assert porcelain(root) == [" M a.txt", " D docs/c.txt", "?? new.txt"]
    os.rename(root / "docs" / "old", root / "docs" / "older")  # a folder renamed
    (root / "fresh" / "deep").mkdir(parents=True)  # a change inside a new folder
    (root / "fresh" / "deep" / "e.txt").write_text("epsilon\n")
    os.chmod(root / "new.txt", 0o755)
    assert porcelain(root) == [
        " M a.txt",
        " D docs/c.txt",
        " D docs/old/d.txt",
        "?? docs/older/d.txt",
        "?? fresh/deep/e.txt",
        "?? new.txt",
    ]
    os.symlink("a.txt", root / "link")
    os.unlink(root / "a.txt")
    (root / "a.txt").mkdir()
    (root / "a.txt" / "inside").write_text("a folder now\n")
    got = porcelain(root)
    assert " T a.txt" not in got and "?? a.txt/inside" in got and "?? link" in got
    assert " D a.txt" in got
    # The ignore rules changed: the whole folder is walked again (x.tmp shows up).
    (root / ".vsyncignore").write_text("")
    assert "?? x.tmp" in porcelain(root)


def test_a_killed_watcher_or_a_new_one_means_a_full_walk(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    root = make_folder(tmp_path)
    settle_racy()
    first = started(monitors, root)
    outside_edit(root, tmp_path, "b.txt")
    assert porcelain(root) == []  # the watcher's word
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert (root / ".vsync" / "fsmonitor.sock").exists()  # stale, left by the kill
    assert porcelain(root) == [" M b.txt"]  # no watcher: the walk sees it
    vs(root, "commit", "-q", "-m", "b")
    settle_racy()
    second = Monitor(root)  # replaces the stale socket
    monitors.append(second)
    header = read_header(root / ".vsync" / "statcache")
    assert header is not None and header[1] is not None
    mark = header[1]
    answer = fsmonitor.ask(root / ".vsync", (mark[0], mark[1]))
    assert answer is not None and answer.paths is None and answer.reason == "unknown-token"
    outside_edit(root, tmp_path, "a.txt")
    assert porcelain(root) == [" M a.txt"]  # a token of the killed watcher: a full walk
    vs(root, "commit", "-q", "-m", "a")
    outside_edit(root, tmp_path, "a.txt")  # from now on the new watcher's word is taken
    assert porcelain(root) == []


def tree_of(root: Path) -> bytes:
    from vsync.model.repository import Repository

    with Repository.discover(root) as repo:
        head = repo.head()
        assert head is not None
        return repo.gitdb.commit(head).tree


def test_commit_with_a_watcher_makes_the_same_tree_as_without(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    watched = make_folder(tmp_path, "watched")
    plain = make_folder(tmp_path, "plain")
    settle_racy()
    started(monitors, watched)
    rng = random.Random(13)
    for round_ in range(3):
        for root in (watched, plain):
            r = random.Random(rng.random())
            (root / f"n{round_}" / "sub").mkdir(parents=True)
            (root / f"n{round_}" / "sub" / "f.txt").write_text(f"round {round_}\n")
            (root / "a.txt").write_text(f"alpha {round_}\n")
            os.chmod(root / "b.txt", 0o755 if round_ % 2 == 0 else 0o644)
            if round_ == 1:
                os.rename(root / "docs", root / "papers")
            if round_ == 2:
                os.unlink(root / "papers" / "old" / "d.txt")  # leaves an empty folder
                (root / "n0").rename(root / "n0.txt.d")
            r.random()
        for root in (watched, plain):
            vs(root, "commit", "-q", "-m", f"round {round_}")
        assert porcelain(watched) == porcelain(plain) == []
        assert tree_of(watched) == tree_of(plain)
    outside_edit(watched, tmp_path, "a.txt")
    assert "nothing to commit" in vs(watched, "commit", "-m", "unseen")  # the watcher's word


def test_answers_wait_for_the_cookie(tmp_path: Path, monitors: list[Monitor]) -> None:
    """A burst of writes just before the question is all in the answer."""
    root = make_folder(tmp_path)
    started(monitors, root)
    control = root / ".vsync"
    first = fsmonitor.ask(control, None)
    assert first is not None and first.token is not None
    token = first.token
    for burst in range(3):
        folder = root / f"burst{burst}"
        folder.mkdir()
        names = [f"burst{burst}/f{i}" for i in range(1500)]
        for name in names:
            (root / name).write_bytes(b"x")
        (root / "a.txt").write_text(f"last write {burst}\n")
        answer = fsmonitor.ask(control, token, timeout=10)
        assert answer is not None and answer.paths is not None, answer
        assert "a.txt" in answer.paths and f"burst{burst}" in answer.paths
        # A new folder is reported once its watch is set, and the caller walks it: a file
        # written before that watch existed is covered by the folder, not named itself.
        reported = set(answer.paths)
        assert all(n in reported or n.rpartition("/")[0] in reported for n in names)
        token = answer.token


def test_lost_events_mean_full_walks_until_watched_again(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    root = make_folder(tmp_path)
    settle_racy()
    m = started(monitors, root)
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 40_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many events to overflow")
    os.kill(m.proc.pid, signal.SIGSTOP)
    try:
        spam = root / "docs"  # a watched folder (one made now would have no watch yet)
        for i in range(limit // 2 + 100):  # two events each (create, close-write)
            (spam / f"s{i}").write_bytes(b"")
        outside_edit(root, tmp_path, "b.txt")
    finally:
        os.kill(m.proc.pid, signal.SIGCONT)
    m.wait_line("reason=overflow")
    assert porcelain(root)[:1] == [" M b.txt"]  # a full walk: the old token is gone
    assert len(porcelain(root)) == limit // 2 + 101
    m.wait_line("again=yes")


def test_the_socket_is_the_users_and_requests_are_bounded(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    import socket

    root = make_folder(tmp_path)
    started(monitors, root)
    sock = root / ".vsync" / "fsmonitor.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    for request in (b"x" * 1000 + b"\n", b"vsync-fsmonitor 1 since nonsense\n", b"GET /\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock))
            try:
                s.sendall(request)
                reply = s.recv(4096)
            except ConnectionResetError:
                reply = b""  # closed unanswered, the request unread
        assert reply == b"" or b" full " in reply, reply
    assert fsmonitor.ask(root / ".vsync", None) is not None  # still answering


def test_answers_that_break_the_format_are_no_answer() -> None:
    head = b"vsync-fsmonitor 1 changes " + b"ab" * 16 + b":7"
    good = fsmonitor.parse_answer(head + b" 2 10", b"a.txt\0b/c\0")
    assert (
        good is not None
        and good.paths == ["a.txt", "b/c"]
        and good.token
        == (
            bytes.fromhex("ab" * 16),
            7,
        )
    )
    for bad_head, body in [
        (head + b" 2 9", b"a.txt\0b/c\0"),  # size differs
        (head + b" 3 10", b"a.txt\0b/c\0"),  # count differs
        (head + b" 1 7", b"../x.y\0"),  # escapes the folder
        (head + b" 1 5", b"/etc\0"),  # absolute
        (head + b" 1 4", b"a//b"),  # no NUL, empty part
        (head + b" 200000 10", b"a.txt\0b/c\0"),  # over the bound
        (b"vsync-fsmonitor 2 full - overflow", b""),  # another version
        (b"vsync-fsmonitor 1 full zz:1 overflow", b""),  # a malformed token
    ]:
        assert fsmonitor.parse_answer(bad_head, body) is None, bad_head
    full = fsmonitor.parse_answer(b"vsync-fsmonitor 1 full - overflow", b"")
    assert full is not None and full.paths is None and full.token is None


def test_stat_cache_header_keeps_the_mark_and_reads_version_1(tmp_path: Path) -> None:
    import struct
    import zlib

    from vsync.model import statcache as sc

    path = tmp_path / "statcache"
    instance = bytes(range(16))
    data = b"".join(sc.encode(sc.EMPTY, {}, None, (instance, 42, b"\x07" * 20)))
    path.write_bytes(data)
    assert read_header(path) == (None, (instance, 42, b"\x07" * 20), 0)
    cache = sc.StatCache(tmp_path)
    cache.set_mark((instance, 43), "07" * 20)
    cache.flush()
    assert read_header(path) == (None, (instance, 43, b"\x07" * 20), 0)
    body = b""
    v1 = struct.pack("<4sIII20s20s16s", b"VSSC", 1, 0, zlib.crc32(body), bytes(20), bytes(20),
                     bytes(16))  # fmt: skip
    path.write_bytes(v1 + body)
    assert read_header(path) == (None, None, 0)
    assert sc.parse(v1 + body) is not None


def test_a_tree_edited_is_the_tree_built(tmp_path: Path) -> None:
    from vsync.model.gitdb import blob_id, build_tree
    from vsync.model.gitdb.tree_edit import edit_tree
    from vsync.model.repository import Repository

    rng = random.Random(7)
    names = ["a", "b", "a-b", "a.b", "é"]

    def some_path() -> str:
        return "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))

    def clash(flat: dict[str, tuple[int, bytes]], p: str) -> list[str]:
        return [q for q in flat if q == p or q.startswith(p + "/") or p.startswith(q + "/")]

    with Repository.init(tmp_path / "r") as repo:
        for _ in range(300):
            flat: dict[str, tuple[int, bytes]] = {}
            for _ in range(rng.randint(0, 12)):
                p = some_path()
                if not clash(flat, p):
                    flat[p] = (rng.choice([0o100644, 0o100755, 0o120000]), blob_id(os.urandom(4)))
            tree, trees = build_tree(flat)
            repo.gitdb.add(trees)
            new = dict(flat)
            for _ in range(rng.randint(0, 6)):
                if new and rng.random() < 0.4:
                    del new[rng.choice(list(new))]
                else:
                    p = some_path()
                    for q in clash(new, p):
                        del new[q]
                    new[p] = (0o100644, blob_id(os.urandom(4)))
            changes: dict[str, tuple[int, bytes] | None] = {
                p: e for p, e in new.items() if flat.get(p) != e
            }
            changes.update((p, None) for p in flat if p not in new)
            items = list(changes.items())
            rng.shuffle(items)
            got, _ = edit_tree(repo.gitdb, tree if flat else None, dict(items))
            assert got == build_tree(new)[0], (flat, new)


def test_commit_with_a_watcher_warns_about_unportable_names(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    root = make_folder(tmp_path)
    settle_racy()
    started(monitors, root)
    (root / "docs" / "aux.txt").write_text("devices\n")
    out = run_vsync("commit", "-m", "names", cwd=root)
    assert out.stderr.splitlines() == [
        "vsync: warning: 'docs/aux.txt' is a reserved name on Windows (AUX, with any extension)"
    ]


def test_a_new_case_twin_of_an_unchanged_name_is_found_with_a_watcher(
    tmp_path: Path, monitors: list[Monitor]
) -> None:
    """With a watcher, status and commit look at the changed paths only; a new name that
    differs only by case from an unchanged one in its folder (a file, or a folder it is
    in) is still a case twin: they look it up among the names the commit has there."""
    root = make_folder(tmp_path)
    (root / "README.md").write_text("read me\n")
    vs(root, "commit", "-q", "-m", "readme")
    settle_racy()
    started(monitors, root)
    outside_edit(root, tmp_path, "a.txt")  # unseen: proof the watcher's word is taken
    (root / "readme.md").write_text("lower case\n")
    (root / "Docs").mkdir()
    (root / "Docs" / "new.txt").write_text("a folder twin\n")
    (root / "notes").mkdir()
    (root / "notes" / "fine.txt").write_text("no twin\n")
    twins = [
        "vsync: warning: 'Docs/new.txt' differs from 'docs' only by case"
        " (one file on Windows and macOS; a push is refused)",
        "vsync: warning: 'readme.md' differs from 'README.md' only by case"
        " (one file on Windows and macOS; a push is refused)",
    ]
    status = run_vsync("status", "--porcelain", cwd=root)
    assert status.stdout.splitlines() == ["?? Docs/new.txt", "?? notes/fine.txt", "?? readme.md"]
    assert status.stderr.splitlines() == twins
    config = root / ".vsync" / "config"
    config.write_text(config.read_text() + "[portability]\n\tstrict = true\n")
    refused = run_vsync("commit", "-m", "twins", cwd=root, check=False)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        line.replace("vsync: warning: ", "vsync: error: ")
        + "; rename it, or set portability.strict = false to commit it"
        for line in twins
    ]
    config.write_text(config.read_text().replace("strict = true", "strict = false"))
    committed = run_vsync("commit", "-m", "twins", cwd=root)
    assert committed.stderr.splitlines() == twins
    assert vs(root, "show", "HEAD:a.txt") == "alpha\n"  # the watcher's word: a.txt unread
    # a rename that changes only the case is no twin: the old spelling is gone (a file,
    # or a folder with everything in it)
    os.rename(root / "README.md", root / "Read-Me.md")
    os.rename(root / "readme.md", root / "README.MD")
    os.rename(root / "notes", root / "NOTES")
    status = run_vsync("status", "--porcelain", cwd=root)
    assert "?? NOTES/fine.txt" in status.stdout.splitlines() and status.stderr == ""
    (root / "notes").mkdir()  # ... but a folder of that name back again is one
    (root / "notes" / "back.txt").write_text("back\n")
    assert run_vsync("status", cwd=root).stderr.splitlines() == [
        "vsync: warning: 'notes/back.txt' differs from 'NOTES' only by case"
        " (one file on Windows and macOS; a push is refused)"
    ]
