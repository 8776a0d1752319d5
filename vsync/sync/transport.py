"""Transports: the byte pipes the sync protocol runs over.

A transport starts ``vsync serve --stdio PATH`` on the other side and gives
the protocol a blocking, buffered byte stream to it. Two kinds share one
interface and one test suite:

- :class:`LocalTransport` runs the server as a local subprocess (path remotes,
  USB drives, tests);
- ``SSHTransport`` (in :mod:`vsync.sync.ssh`, the only module that imports
  asyncssh) runs it through an SSH session.

``read`` flushes pending writes before it blocks, so a request written and
not flushed can never deadlock against the reply it waits for. Every wait for
the remote is bounded by an idle timeout (no byte received, or none taken, for
that long): the transport then stops the remote and raises :class:`Stalled`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from typing import IO, Protocol

from vsync.errors import StoppedError
from vsync.sync.buffered_reads import BufferedReads
from vsync.sync.errors import (
    ConnectionLost,
    RemoteCommandMissing,
    Stalled,
    TransportClosed,
    TransportError,
)
from vsync.sync.fdpipe import wait_ready
from vsync.sync.url import RemoteURL

READ_BLOCK = 1 << 20  # bytes asked of the OS per read
WRITE_BUFFER = 256 * 1024  # buffered writes are sent once this much is pending
STDERR_KEEP = 64 * 1024  # the tail of the remote's stderr kept for messages
PIPE_SIZE = 1 << 20  # Linux pipe capacity asked for (F_SETPIPE_SZ)
EXIT_WAIT = 5.0  # seconds to wait for the remote's exit status after EOF
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_MISSING = re.compile(
    r"command not found|: not found|No such file or directory|No module named '?vsync"
)


class Transport(Protocol):
    """What the protocol needs from a pipe to ``vsync serve --stdio``."""

    bytes_sent: int
    bytes_received: int
    peer: str  # who is named when the remote stalls

    def read(self, n: int) -> bytes: ...  # up to n bytes; b"" at EOF
    def readexactly(self, n: int) -> bytes: ...  # raises TransportClosed at EOF
    def write(self, data: bytes | bytearray) -> None: ...  # buffered; may be kept: never mutate it
    def flush(self) -> None: ...
    def close(self) -> int: ...  # closes our side, waits; the remote's exit status
    def abort(self) -> None: ...  # stop the remote now; never raises

    @property
    def stderr_text(self) -> str: ...


def open_transport(
    url: RemoteURL,
    remote_cmd: str | None = None,
    accept_new_host: bool = False,
    idle_timeout: float | None = None,
    key_passphrase: Callable[[str, int], str | None] | None = None,
) -> Transport:
    """Start ``vsync serve --stdio PATH`` for ``url`` and return the pipe to it.

    ``remote_cmd`` replaces ``vsync`` (like rsync's ``--rsync-path``): for an
    SSH remote it is run by the remote login shell as written; for a local
    path it is split with shell rules and run directly (default: this Python
    with ``-m vsync``). ``idle_timeout``: seconds the remote may send (or take)
    nothing before the transport stops it (None: no limit). ``key_passphrase``: SSH
    only, the passphrase of an encrypted private key (:mod:`vsync.sync.ssh`).
    """
    if url.kind == "local":
        argv = shlex.split(remote_cmd) if remote_cmd else [sys.executable, "-m", "vsync"]
        local = LocalTransport([*argv, "serve", "--stdio", url.path], shlex.join(argv))
        local.idle_timeout = idle_timeout
        return local
    from vsync.sync.ssh import open_ssh  # asyncssh loads only when needed

    return open_ssh(url, remote_cmd or "vsync", accept_new_host, idle_timeout, key_passphrase)


def remote_command(remote_cmd: str | None, path: str) -> str:
    """The shell command line that starts the server on an SSH host."""
    return f"{remote_cmd or 'vsync'} serve --stdio {quote_remote_path(path)}"


def quote_remote_path(path: str) -> str:
    """Quote ``path`` for a POSIX shell, leaving a leading ``~/`` or ``~user/`` to expand."""
    m = re.match(r"~[A-Za-z0-9._-]*/?", path)
    head = m.group() if m else ""
    rest = path[len(head) :]
    return head + (shlex.quote(rest) if rest else "")


def command_missing(status: int | None, stderr: str) -> bool:
    """Whether an exit looks like "the remote command does not exist".

    Only asked while the remote has sent nothing: a remote that spoke the
    protocol exists, whatever its last words say ("No such file ...")."""
    return status in (126, 127) or (status not in (None, 0) and bool(_MISSING.search(stderr)))


class StreamTransport(BufferedReads):
    """Buffering, counting and error mapping over a raw byte stream.

    Subclasses provide ``_raw_read``, ``_raw_write``, ``_close_write``,
    ``_wait_exit``, ``_release`` and ``_kill``.
    """

    where = "the remote"
    command = "vsync"
    read_size = READ_BLOCK

    def __init__(self) -> None:
        self._wbuf = bytearray()
        self._eof = False
        self._status: int | None = None
        self._done = False  # no more writes: closed, aborted or the remote ended
        self._released = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.idle_timeout: float | None = None  # seconds without a byte moving; None: no limit
        self.peer = "the remote"

    # -- subclass hooks -------------------------------------------------
    def _raw_read(self, n: int) -> bytes:
        raise NotImplementedError

    def _raw_write(self, data: memoryview) -> None:
        """Send ``data``; it views bytes nobody changes afterwards (the SSH
        transport hands the object to its event loop instead of copying it)."""
        raise NotImplementedError

    def _close_write(self) -> None:
        raise NotImplementedError

    def _wait_exit(self, timeout: float | None) -> int | None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _kill(self) -> None:
        raise NotImplementedError

    @property
    def stderr_text(self) -> str:
        return ""

    # -- reading (BufferedReads: read, readexactly) ---------------------------
    def _closed_error(self) -> Exception:
        return self.eof_error()

    def _recv(self, n: int) -> bytes:
        if self._eof or self._released:
            return b""
        self.flush()
        try:
            data = self._raw_read(n)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self._eof = True
        self.bytes_received += len(data)
        return data

    # -- writing --------------------------------------------------------
    def write(self, data: bytes | bytearray) -> None:
        if self._done:
            raise TransportError(f"the connection to {self.where} is already closed")
        if len(self._wbuf) + len(data) > WRITE_BUFFER:
            self.flush()
            if len(data) >= WRITE_BUFFER:
                self._send(memoryview(data))
                return
        self._wbuf += data

    def flush(self) -> None:
        if self._wbuf:
            pending, self._wbuf = self._wbuf, bytearray()
            self._send(memoryview(pending))

    def _send(self, data: memoryview) -> None:
        if self._released:
            raise self.eof_error()
        try:
            self._raw_write(data)
        except (BrokenPipeError, ConnectionResetError):
            raise self.eof_error() from None
        self.bytes_sent += len(data)

    # -- ending ---------------------------------------------------------
    def eof_error(self) -> StoppedError:
        """The error that explains why the remote stopped talking."""
        status = self._status
        if status is None:
            with contextlib.suppress(Exception):
                status = self._wait_exit(EXIT_WAIT)
        stderr = self.stderr_text
        if status is not None and not self._done:
            # The remote has ended: free the pipes now, close() just reports.
            self._status = status
            self._done = True
            self._release_once()
        if not self.bytes_received and command_missing(status, stderr):
            return RemoteCommandMissing(self.where, self.command)
        if lost := self._lost():
            return ConnectionLost(self.where, lost)
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else (f"exit status {status}" if status else "")
        return TransportClosed(self.where, detail)

    def _lost(self) -> str:
        """Why the connection itself dropped (not the remote command ending), or ""."""
        return ""

    def stalled(self, sending: bool) -> Stalled:
        """The remote moved nothing for the idle timeout: stop it now (a stuck remote
        never ends by itself) and say so. For the subclasses' waits."""
        self.abort()
        assert self.idle_timeout is not None
        return Stalled(self.peer, self.idle_timeout, sending)

    def close(self) -> int:
        """Send EOF, drain what the remote still writes, and return its exit status.

        Raises :class:`RemoteCommandMissing` when the remote command does not exist.
        """
        if self._done:
            return self._status if self._status is not None else 255
        try:
            with contextlib.suppress(TransportError):
                self.flush()
            self._done = True
            self._close_write()
            while self._recv(READ_BLOCK):
                pass
            status = self._wait_exit(None)
            self._status = 255 if status is None else status
        finally:
            self._done = True
            self._release_once()
        if not self.bytes_received and command_missing(self._status, self.stderr_text):
            raise RemoteCommandMissing(self.where, self.command)
        return self._status

    def abort(self) -> None:
        """Stop the remote now (after an error or an interrupt); never raises."""
        self._done = True
        if self._released:
            return
        with contextlib.suppress(Exception):
            self._kill()
        self._release_once()

    def _release_once(self) -> None:
        if not self._released:
            self._released = True
            with contextlib.suppress(Exception):
                self._release()

    def __enter__(self) -> StreamTransport:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class TailBuffer:
    """The last ``STDERR_KEEP`` bytes of a stream, safe to fill from another thread."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            if len(self._buf) > STDERR_KEEP:
                del self._buf[: len(self._buf) - STDERR_KEEP]

    @property
    def text(self) -> str:
        with self._lock:
            return self._buf.decode("utf-8", "replace")


class StderrCollector(threading.Thread):
    """Reads a stream to its end in the background, keeping its tail."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="vsync-remote-stderr", daemon=True)
        self._stream = stream
        self.tail = TailBuffer()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while data := self._stream.read(65536):
                self.tail.add(data)


_LOCAL_SERVERS: weakref.WeakSet[LocalTransport] = weakref.WeakSet()


def stop_local_servers() -> None:
    """Kill every local server this process started and has not released (a process
    about to end at once after Ctrl-C: its servers are in sessions of their own,
    so the terminal's SIGINT never reached them). Safe from any thread."""
    for transport in list(_LOCAL_SERVERS):
        with contextlib.suppress(Exception):
            transport._kill()


class LocalTransport(StreamTransport):
    """``vsync serve --stdio PATH`` as a local subprocess, over two pipes."""

    where = "this machine"

    def __init__(self, argv: list[str], command: str | None = None) -> None:
        super().__init__()
        self.command = command or shlex.join(argv)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # Ctrl-C reaches the client, which ends the server
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            raise RemoteCommandMissing(self.where, self.command) from None
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        for fd in (self._in, self._out):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(self._in, False)  # a write waits in poll, with the idle timeout
        _LOCAL_SERVERS.add(self)
        self._stderr = StderrCollector(self._proc.stderr)
        self._stderr.start()

    @property
    def stderr_text(self) -> str:
        return self._stderr.tail.text

    def _raw_read(self, n: int) -> bytes:
        if not wait_ready(self._out, False, self.idle_timeout):
            raise self.stalled(sending=False)
        return os.read(self._out, n)

    def _raw_write(self, data: memoryview) -> None:
        while data:
            try:
                data = data[os.write(self._in, data) :]
            except BlockingIOError:
                if not wait_ready(self._in, True, self.idle_timeout):
                    raise self.stalled(sending=True) from None

    def _close_write(self) -> None:
        assert self._proc.stdin
        with contextlib.suppress(OSError):
            self._proc.stdin.close()

    def _wait_exit(self, timeout: float | None) -> int | None:
        try:
            status = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._stderr.join(EXIT_WAIT)
        return status

    def _release(self) -> None:
        _LOCAL_SERVERS.discard(self)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._proc.poll() is None:
            self._kill()
        self._stderr.join(EXIT_WAIT)
        if self._proc.stderr:
            with contextlib.suppress(OSError):
                self._proc.stderr.close()

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
