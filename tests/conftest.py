"""Shared fixtures: run the real ``vsync`` CLI as a subprocess in temp folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

VSYNC = [sys.executable, "-m", "vsync"]


def racy_wait() -> float:
    """Seconds after which a file the test just wrote under the temporary folder is
    past the stat cache's racy window there (100 ms on ext4 or tmpfs, else 2 s), so
    that vsync trusts its cached entry: the window and a margin."""
    import tempfile

    from vsync.model.statcache import racy_ns

    return racy_ns(tempfile.gettempdir()) / 1e9 + 0.1


# No test may reach beyond this machine: vsync refuses non-loopback SSH hosts
# while this is set (inherited by every vsync subprocess the tests start).
os.environ["VSYNC_LOOPBACK_ONLY"] = "1"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""


def run_vsync(
    *args: str | os.PathLike[str],
    cwd: Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 600,
) -> Run:
    full_env = dict(os.environ)
    full_env.setdefault("VSYNC_AUTHOR_NAME", "Test Author")
    full_env.setdefault("VSYNC_AUTHOR_EMAIL", "test@example.com")
    full_env.setdefault("VSYNC_HOST", "testhost")
    full_env.pop("VSYNC_DEBUG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [*VSYNC, *map(str, args)],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    result = Run(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        proc.stdout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"vsync {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def run_on_terminal(
    *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
) -> Run:
    """``vsync ARGS`` with stdin, stdout and stderr on a pseudo-terminal (so it draws
    what it draws for a person); ``stdout`` is everything the terminal received."""
    import pty

    full_env = dict(os.environ)
    full_env.update({"VSYNC_AUTHOR_NAME": "Test Author", "VSYNC_AUTHOR_EMAIL": "test@example.com"})
    full_env.pop("VSYNC_DEBUG", None)
    full_env.update(env or {})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*VSYNC, *map(str, args)], cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    received = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not data:
            break
        received.append(data)
    os.close(master)
    code = proc.wait(timeout=600)
    text = b"".join(received).decode("utf-8", "replace")
    return Run(code, text, "")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An initialised, empty working folder."""
    root = tmp_path / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    return root


@pytest.fixture
def vsync(work: Path) -> Callable[..., Run]:
    """``vsync(*args, check=True)`` run inside the ``work`` folder."""

    def _run(*args: str | os.PathLike[str], **kw: object) -> Run:
        kw.setdefault("cwd", work)
        return run_vsync(*args, **kw)  # type: ignore[arg-type]

    return _run


def snapshot_tree(root: Path) -> dict[str, tuple[str, bytes | str, bool]]:
    """Every file and symlink under ``root`` (minus .vsync): kind, content, exec bit."""
    out: dict[str, tuple[str, bytes | str, bool]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != ".vsync"]
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full), False)
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    out[rel] = ("file", f.read(), os.access(full, os.X_OK))
    return out


def clear_worktree(root: Path) -> None:
    for child in root.iterdir():
        if child.name == ".vsync":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- sshd: a real OpenSSH server on 127.0.0.1 for SSH remotes (tests/sshd.py) ---


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    """OpenSSH ``sshd`` on 127.0.0.1:<free port>, with a client HOME (see tests/sshd.py).

    ``.url(path)`` -> ``ssh://user@127.0.0.1:PORT/path``; ``.alias_url(path)`` ->
    ``vsync-test:path`` via ``~/.ssh/config``; ``.remote_cmd`` for ``--remote-cmd``;
    ``.env()`` for vsync subprocesses (HOME = the client home, no agent).
    Fails (never skips) when sshd is not installed: ``make test`` installs it.
    """
    from sshd import SSHDMissing, start_sshd  # tests/sshd.py

    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except SSHDMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# --- SeaweedFS: a real S3-compatible store on 127.0.0.1 for S3 remotes (tests/seaweed.py) ---


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> object:
    """``weed server`` with its S3 gateway on free ports and one bucket, ``vsync``
    (see tests/seaweed.py): ``.env()`` for clients, ``.make_bucket(name)``.
    One per session (it takes seconds to start); each test uses a prefix of its own
    (:func:`s3_url`). Fails (never skips) when ``weed`` is not installed."""
    from seaweed import WeedMissing, start_seaweed  # tests/seaweed.py

    try:
        server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    except WeedMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.make_bucket(S3_BUCKET)
        yield server
    finally:
        server.stop()


S3_BUCKET = "vsync"


@pytest.fixture
def s3_url(seaweed: object, request: pytest.FixtureRequest) -> str:
    """``s3://vsync/<a prefix no other test uses>``."""
    import hashlib

    tag = hashlib.blake2s(request.node.nodeid.encode(), digest_size=6).hexdigest()
    return f"s3://{S3_BUCKET}/t-{tag}-{os.getpid()}"


# -- remotes: every sync test runs over a real sshd and over a path ----------------

EVIL = Path(__file__).resolve().parent / "evil_serve.py"


@dataclass
class RemoteKind:
    kind: str
    sshd: object | None  # tests.sshd.SSHD

    def url(self, path: Path) -> str:
        if self.sshd is None:
            return str(path)
        return self.sshd.url(path)  # type: ignore[attr-defined]

    def cmd(self, evil_mode: str | None = None) -> list[str]:
        if evil_mode is not None:
            return ["--remote-cmd", f"{sys.executable} {EVIL} {evil_mode}"]
        if self.sshd is None:
            return []
        return ["--remote-cmd", self.sshd.remote_cmd]  # type: ignore[attr-defined]

    @property
    def env(self) -> dict[str, str] | None:
        return None if self.sshd is None else self.sshd.env()  # type: ignore[attr-defined]

    def run(
        self,
        *args: str | os.PathLike[str],
        cwd: Path,
        check: bool = True,
        env_host: str | None = None,
    ) -> Run:
        env = dict(self.env or {})
        if env_host is not None:
            env["VSYNC_HOST"] = env_host
        return run_vsync(*args, cwd=cwd, check=check, env=env or None)


@pytest.fixture(params=["path", "ssh"])
def remote(request: pytest.FixtureRequest) -> RemoteKind:
    if request.param == "ssh":
        return RemoteKind("ssh", request.getfixturevalue("sshd_server"))
    return RemoteKind("path", None)


# -- the server side of a transfer: wait for it before inspecting the server ------------


def serve_pids(repo: Path) -> list[int]:
    """Processes running ``vsync serve`` for ``repo`` (a local subprocess or under sshd)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and any(str(repo).encode() in a for a in argv):
            pids.append(int(entry))
    return pids


def wait_for_serve_exit(repo: Path, timeout: float = 60) -> None:
    """Wait until no ``vsync serve`` works on ``repo``. A client that was killed (or
    that stopped without waiting for the server) leaves its server end running on
    what is already in the pipe; count or check what the server stored only after."""
    deadline = time.monotonic() + timeout
    while serve_pids(repo):
        assert time.monotonic() < deadline, f"a vsync serve for {repo} did not exit"
        time.sleep(0.05)


# -- waiting for something a background process does ------------------------------------

WAIT_SECONDS = 60.0  # how long any one condition may take under load before a test fails


def wait_for(what: str, cond: Callable[[], object], timeout: float = WAIT_SECONDS) -> object:
    """``cond()``'s first truthy value, polled every 20 ms; fails naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
