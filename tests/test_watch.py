"""``vsync watch`` (issue 13): two watched copies and a server repository, real
``vsync watch`` subprocesses, a real sshd (tests/sshd.py) and real files.

Every wait is for a condition (a file's content, a log line), bounded generously so
that a loaded machine does not make a test flaky; the latency bound the issue asks
for (an edit on one copy appears on the other within 5 s) is asserted on the median
of 20 edits, which is printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import VSYNC, run_vsync, serve_pids, wait_for

from vsync.sync import protocol as p
from vsync.sync.client import SyncOptions, open_session
from vsync.sync.remotes import Remote
from vsync.sync.url import parse_url

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "vsync-watch@.service"
WAIT = 60.0  # seconds any one condition may take under load before the test fails


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _ctrl_c_as_on_a_terminal() -> None:
    """A suite started in the background has SIGINT ignored, and the child would inherit
    that: give the watcher Ctrl-C's default disposition, as a terminal's shell does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watch:
    """One ``vsync watch`` subprocess; its stdout (key=value lines) goes to a file."""

    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.folder = folder
        self.out = folder.parent / f"{folder.name}-watch-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [*VSYNC, "watch", *args],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=_ctrl_c_as_on_a_terminal,
            )

    def events(self, name: str | None = None) -> list[dict[str, str]]:
        out = []
        for line in self.out.read_text(errors="replace").splitlines():
            fields = {}
            for m in re.finditer(r'(\w[\w-]*)=("(?:[^"\\]|\\.)*"|\S*)', line):
                value = m.group(2)
                fields[m.group(1)] = json.loads(value) if value.startswith('"') else value
            if name is None or fields.get("event") == name:
                out.append(fields)
        return out

    def wait_event(self, name: str, count: int = 1, timeout: float = WAIT) -> None:
        def seen() -> bool:
            assert self.proc.poll() is None or len(self.events(name)) >= count, self.output()
            return len(self.events(name)) >= count

        wait_for(f"{count} x event={name} in {self.out.name}", seen, timeout)

    def output(self) -> str:
        return f"stdout:\n{read(self.out)!r}\nstderr:\n{read(self.err)!r}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


class Copies:
    """A server repository and two clones of it, ``a`` and ``b``, with their watchers."""

    def __init__(self, tmp: Path, url: Callable[[Path], str], env: dict[str, str], rc: str):
        self.tmp = tmp
        self.server = tmp / "server.vsync"
        self.base_env = env
        self.remote_cmd = rc
        self.watchers: list[Watch] = []
        self.a, self.b = tmp / "a", tmp / "b"
        self.a.mkdir()
        self.vsync("init", cwd=self.a)
        (self.a / "note.txt").write_text("line one\nline two\nline three\n")
        self.vsync("commit", "-q", "-m", "start", cwd=self.a)
        extra = ["--remote-cmd", rc] if rc else []
        self.vsync("push", "-q", "--create", url(self.server), *extra, cwd=self.a)
        self.vsync("remote", "add", "origin", url(self.server), *extra, cwd=self.a)
        self.vsync("clone", "-q", url(self.server), self.b, *extra, cwd=tmp)

    def env(self, folder: Path) -> dict[str, str]:
        env = dict(self.base_env)
        env.setdefault("VSYNC_AUTHOR_NAME", "Test Author")
        env.setdefault("VSYNC_AUTHOR_EMAIL", "test@example.com")
        env["VSYNC_HOST"] = folder.name
        env.pop("VSYNC_DEBUG", None)
        return env

    def vsync(self, *args: str | os.PathLike[str], cwd: Path, check: bool = True) -> object:
        return run_vsync(*args, cwd=cwd, env=self.env(cwd), check=check)

    def watch(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> Watch:
        w = Watch(folder, {**self.env(folder), **(env or {})}, *args)
        self.watchers.append(w)
        return w

    def close(self) -> None:
        for w in self.watchers:
            w.stop()


def _copies(tmp: Path, sshd: object | None) -> Iterator[Copies]:
    if sshd is None:
        copies = Copies(tmp, str, dict(os.environ), "")
    else:
        copies = Copies(
            tmp,
            sshd.url,  # type: ignore[attr-defined]
            sshd.env(),  # type: ignore[attr-defined]
            sshd.remote_cmd,  # type: ignore[attr-defined]
        )
    try:
        yield copies
    finally:
        copies.close()


@pytest.fixture
def ssh_copies(tmp_path: Path, sshd_server: object) -> Iterator[Copies]:
    yield from _copies(tmp_path, sshd_server)


@pytest.fixture
def path_copies(tmp_path: Path) -> Iterator[Copies]:
    yield from _copies(tmp_path, None)


def started(w: Watch, notify: bool = True) -> Watch:
    """Wait until ``w`` watches (and, over SSH, listens for the remote)."""
    w.wait_event("listening" if notify else "started")
    return w


# -- latency ----------------------------------------------------------------------------


@pytest.mark.slow
def test_an_edit_appears_on_the_other_copy_within_5_s(ssh_copies: Copies) -> None:
    c = ssh_copies
    started(c.watch(c.a))
    started(c.watch(c.b))
    delays = []
    for i in range(20):
        content = f"edit {i} on a\n".encode()
        t0 = time.monotonic()
        (c.a / "note.txt").write_bytes(content)
        wait_for(f"edit {i} on b", lambda want=content: read(c.b / "note.txt") == want)
        delays.append(time.monotonic() - t0)
    median = statistics.median(delays)
    print(
        f"\nwatch latency, edit on a -> file on b, 20 edits: median {median:.2f} s, "
        f"min {min(delays):.2f} s, max {max(delays):.2f} s"
    )
    assert median <= 5.0, delays


# -- conflicts --------------------------------------------------------------------------


def test_simultaneous_edits_keep_both_and_report_a_conflict(ssh_copies: Copies) -> None:
    c = ssh_copies
    wa, wb = started(c.watch(c.a)), started(c.watch(c.b))
    (c.a / "note.txt").write_text("line one\nline two from a\nline three\n")
    (c.b / "note.txt").write_text("line one\nline two from b\nline three\n")

    def conflicted() -> Path | None:
        for folder in (c.a, c.b):
            st = run_vsync("status", "--porcelain", cwd=folder, check=False)
            if "UU note.txt" in st.stdout:
                return folder
        return None

    folder = wait_for("a conflict on one copy", conflicted)
    assert isinstance(folder, Path)
    text = (folder / "note.txt").read_text()
    assert "line two from a" in text and "line two from b" in text
    watcher = wa if folder == c.a else wb
    watcher.wait_event("conflict")
    assert watcher.events("conflict")[0]["first"] == "note.txt"
    status = run_vsync("status", cwd=folder).stdout
    assert "unresolved conflict" in status
    assert wa.proc.poll() is None and wb.proc.poll() is None  # watching goes on


# -- a file being written ------------------------------------------------------------------

WRITER = r"""
import sys, time
path, seconds, pause = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
with open(path, "w") as f:
    i, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(50):
            f.write(f"{i:06d}\n"); i += 1
        record = f"{i:06d}\n"
        f.write(record[:3]); f.flush()  # half a record, held open over a quiet pause
        time.sleep(pause)
        f.write(record[3:]); f.flush(); i += 1
        time.sleep(0.01)
print(i)
"""


def consistent(data: bytes) -> bool:
    """Whether ``data`` is a state the writer produced between records: 0..n-1."""
    lines = data.split(b"\n")
    if lines[-1] != b"":
        return False
    return [int(x) for x in lines[:-1]] == list(range(len(lines) - 1))


def test_a_file_written_for_10_s_is_never_committed_torn(ssh_copies: Copies) -> None:
    c = ssh_copies
    started(c.watch(c.a))
    started(c.watch(c.b))
    grow = c.a / "grow.txt"
    # Pauses of 2.5 s with the file open: longer than the settle time and the look at
    # its size, so only the open-for-writing check keeps the watcher from committing.
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(grow), "10", "2.5"], capture_output=True, check=True
    )
    final = grow.read_bytes()
    assert consistent(final) and int(writer.stdout) == final.count(b"\n")
    wait_for("grow.txt on b", lambda: read(c.b / "grow.txt") == final)
    log = run_vsync("log", "--oneline", "grow.txt", cwd=c.a).stdout.splitlines()
    assert log
    for line in log:
        rev = line.split()[0]
        shown = run_vsync("show", f"{rev}:grow.txt", cwd=c.a).stdout_bytes
        assert consistent(shown), f"{rev} holds a torn grow.txt ({len(shown)} bytes)"


# -- the network goes away --------------------------------------------------------------


@pytest.mark.slow
def test_sshd_stopped_for_30_s_loses_nothing(tmp_path: Path) -> None:
    from sshd import start_sshd

    sshd = start_sshd(tmp_path / "sshd")
    try:
        for copies in _copies(tmp_path, sshd):
            _outage(copies, sshd)
    finally:
        sshd.stop()


def _outage(c: Copies, sshd: object) -> None:
    wa, wb = started(c.watch(c.a)), started(c.watch(c.b))
    sshd.kill_all()  # type: ignore[attr-defined]
    for pid in serve_pids(c.server):
        os.kill(pid, signal.SIGKILL)
    down = time.monotonic()
    (c.a / "from-a.txt").write_text("written on a while offline\n")
    (c.b / "from-b.txt").write_text("written on b while offline\n")
    wa.wait_event("offline")
    wb.wait_event("offline")
    time.sleep(max(0.0, 30 - (time.monotonic() - down)))  # the outage lasts 30 s
    sshd.start_again()  # type: ignore[attr-defined]
    for folder, name in ((c.a, "from-b.txt"), (c.b, "from-a.txt")):
        wait_for(f"{name} on {folder.name}", lambda f=folder, n=name: (f / n).exists(), 150)
    wa.wait_event("online")
    wb.wait_event("online")
    assert len(wa.events("offline")) == 1 and len(wb.events("offline")) == 1  # said once
    for w in (wa, wb):
        assert len(w.events("notify-lost")) == 1, w.output()

    def same_head() -> bool:
        heads = {run_vsync("log", "--oneline", "-n", "1", cwd=f).stdout for f in (c.a, c.b)}
        return len(heads) == 1

    wait_for("both copies on one commit", same_head, 90)
    for folder in (c.a, c.b):
        assert (folder / "from-a.txt").read_text() == "written on a while offline\n"
        assert (folder / "from-b.txt").read_text() == "written on b while offline\n"
        run_vsync("fsck", cwd=folder)


# -- crashes and locks ---------------------------------------------------------------------


def test_a_watcher_killed_mid_commit_leaves_nothing_fsck_or_watch_cannot_handle(
    path_copies: Copies,
) -> None:
    c = path_copies
    # The watcher is killed where its commit has written a git pack, before the branch moves.
    w = started(c.watch(c.a, env={"VSYNC_FAULTS": "watch/git-pack-written=kill"}), False)
    (c.a / "big.bin").write_bytes(os.urandom(3 << 20))
    assert w.proc.wait(WAIT) == -signal.SIGKILL, w.output()
    assert (c.a / ".vsync" / "watch.lock").exists()  # left behind by the kill
    run_vsync("fsck", cwd=c.a)
    again = started(c.watch(c.a), False)
    again.wait_event("synced")
    assert again.events("synced")[-1].get("pushed")
    c.vsync("watch", "--once", cwd=c.b)
    assert (c.b / "big.bin").read_bytes() == (c.a / "big.bin").read_bytes()


def test_a_second_watcher_on_one_folder_refuses(path_copies: Copies) -> None:
    c = path_copies
    first = started(c.watch(c.a), False)
    second = run_vsync("watch", cwd=c.a, env=c.env(c.a), check=False, timeout=WAIT)
    assert second.returncode == 1
    lines = second.stderr.splitlines()
    assert len(lines) == 1 and "already running" in lines[0], second.stderr
    assert f"pid {first.proc.pid}" in lines[0]
    assert first.proc.poll() is None


def test_a_wiped_folder_pauses_the_watcher_and_spreads_nowhere(path_copies: Copies) -> None:
    c = path_copies
    w = started(c.watch(c.a), False)
    for i in range(12):
        (c.a / f"f{i:02d}.txt").write_text(f"file {i}\n")
    w.wait_event("synced")
    wait_for("the files pushed", lambda: w.events("synced")[-1].get("pushed"))
    for path in c.a.glob("*.txt"):
        path.unlink()
    w.wait_event("paused")
    assert "deleted" in w.events("paused")[0]["reason"]
    assert w.proc.poll() is None
    c.vsync("watch", "--once", cwd=c.b)
    assert len(list(c.b.glob("f*.txt"))) == 12  # the wipe was neither committed nor sent


# -- --once, SIGTERM, polling ------------------------------------------------------------


def test_once_commits_syncs_and_exits(path_copies: Copies) -> None:
    c = path_copies
    (c.a / "once.txt").write_text("for cron\n")
    out = run_vsync("watch", "--once", cwd=c.a, env=c.env(c.a)).stdout
    assert "event=synced" in out and "pushed=" in out
    run_vsync("watch", "--once", cwd=c.b, env=c.env(c.b))
    assert (c.b / "once.txt").read_text() == "for cron\n"
    assert run_vsync("status", "--porcelain", cwd=c.a).stdout == ""


def test_sigterm_exits_0_after_the_step_in_progress(path_copies: Copies) -> None:
    c = path_copies
    w = started(c.watch(c.a), False)
    (c.a / "late.txt").write_text("edit\n")
    w.wait_event("synced")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(WAIT) == 0, w.output()
    assert w.events()[-1]["event"] == "stopped"
    assert not (c.a / ".vsync" / "watch.lock").read_text()  # released: no pid left


def test_ctrl_c_exits_130(path_copies: Copies) -> None:
    c = path_copies
    w = started(c.watch(c.a), False)
    w.proc.send_signal(signal.SIGINT)
    assert w.proc.wait(WAIT) == 130, w.output()
    assert "interrupted" in w.err.read_text()
    assert run_vsync("watch", "--once", cwd=c.a, env=c.env(c.a)).returncode == 0  # lock free


def test_a_path_remote_is_polled(path_copies: Copies) -> None:
    c = path_copies
    w = started(c.watch(c.a, "--poll-interval", "1"), False)
    assert w.events("started")[0]["mode"] == "poll"
    (c.b / "from-b.txt").write_text("pushed by hand\n")
    c.vsync("sync", "-q", cwd=c.b)
    wait_for("from-b.txt on a", lambda: read(c.a / "from-b.txt") == b"pushed by hand\n")


def test_a_server_without_watch_v1_is_polled(ssh_copies: Copies) -> None:
    c = ssh_copies
    old_server = f"{sys.executable} {ROOT / 'tests' / 'evil_serve.py'} no-watch"
    w = c.watch(c.a, "--poll-interval", "1", "--remote-cmd", old_server)
    w.wait_event("notify-unsupported")
    (c.b / "from-b.txt").write_text("pushed by hand\n")
    c.vsync("sync", "-q", cwd=c.b)
    wait_for("from-b.txt on a", lambda: read(c.a / "from-b.txt") == b"pushed by hand\n")
    assert not w.events("listening")


# -- the watch-v1 protocol -------------------------------------------------------------------


def test_watch_v1_tells_of_a_moved_ref_and_keeps_an_idle_session_alive(
    path_copies: Copies,
) -> None:
    """WATCHING, then KEEPALIVE frames past the client's 2 s idle timeout, then REF_MOVED
    when another client pushes."""
    c = path_copies
    remote = Remote("origin", parse_url(str(c.server)))
    session = open_session(remote, SyncOptions(), timeout=2.0)
    try:
        assert p.peer_has(session.hello, p.WATCH_V1)
        session.conn.send_json(p.WATCH, {"ref": "refs/heads/main", "keepalive": 1})
        session.conn.flush()
        first = session.conn.expect(p.WATCHING).json()
        assert first["value"] == session.refs[b"refs/heads/main"].decode()
        (c.b / "moved.txt").write_text("x\n")
        # Another client pushes 5 s from now; meanwhile this one waits with a 2 s idle
        # timeout, which only the server's KEEPALIVE frames (every 1 s) keep from firing.
        pusher = threading.Timer(5, c.vsync, ("sync", "-q"), {"cwd": c.b})
        pusher.start()
        t0 = time.monotonic()
        moved = session.conn.expect(p.REF_MOVED).json()
        assert time.monotonic() - t0 >= 4.5
        assert moved["old"] == first["value"] and moved["new"] != first["value"]
        pusher.join()
        head_b = run_vsync("log", "-n", "1", "--oneline", cwd=c.b).stdout.split()[0]
        assert moved["new"].startswith(head_b)
    finally:
        session.transport.abort()


def test_watch_v1_refuses_any_ref_but_main(path_copies: Copies) -> None:
    c = path_copies
    remote = Remote("origin", parse_url(str(c.server)))
    session = open_session(remote, SyncOptions(), timeout=10.0)
    try:
        session.conn.send_json(p.WATCH, {"ref": "refs/heads/other"})
        session.conn.flush()
        with pytest.raises(p.RemoteError, match="only refs/heads/main can be watched"):
            session.conn.recv()
    finally:
        session.transport.abort()


# -- the systemd unit ---------------------------------------------------------------------


def unit_exec_start() -> list[str]:
    lines = UNIT.read_text().splitlines()
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
            continue
        key, _, value = line.partition("=")
        sections[current][key.strip()] = value.strip()
    assert {"Unit", "Service", "Install"} <= set(sections)
    assert sections["Service"]["Restart"] == "on-failure"
    assert sections["Install"]["WantedBy"] == "default.target"
    return shlex.split(sections["Service"]["ExecStart"])


def test_the_systemd_unit_file_runs(path_copies: Copies, tmp_path: Path) -> None:
    """In a home whose ~/.local/bin/vsync runs this checkout: ``systemd-analyze --user
    verify`` accepts the unit where it is installed, and its ExecStart (%h and %I filled
    in) runs one cycle with --once."""
    c = path_copies
    home = tmp_path  # the copies live in it: the instance is "a"
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "vsync"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(VSYNC)} "$@"\n')
    wrapper.chmod(0o755)
    env = {**c.env(c.a), "HOME": str(home)}
    if shutil.which("systemd-analyze"):
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        instance = tmp_path / "vsync-watch@a.service"
        shutil.copy(UNIT, instance)
        verify = subprocess.run(
            ["systemd-analyze", "--user", "verify", str(instance)],
            env={**env, "XDG_RUNTIME_DIR": str(runtime)},
            capture_output=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stderr
    argv = unit_exec_start()
    assert argv[0] == "%h/.local/bin/vsync" and "watch" in argv
    filled = [a.replace("%h", str(home)).replace("%I", "a") for a in argv]
    (c.a / "unit.txt").write_text("from the unit\n")
    proc = subprocess.run(
        [*filled, "--once"], env=env, capture_output=True, check=False, timeout=WAIT, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    assert b"event=synced" in proc.stdout
    assert run_vsync("status", "--porcelain", cwd=c.a).stdout == ""
