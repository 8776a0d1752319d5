"""The fsmonitor socket's serving side: ``.vsync/fsmonitor.sock`` (docs/format.md).

Only the watcher that holds ``watch.lock`` serves, so a socket file left by a
killed watcher is stale by construction and replaced: the new one is bound under
a temporary name, given mode 0600 and renamed over it. A connection is answered
only if its peer runs as this user (``SO_PEERCRED``); a request is one line of at
most :data:`~vsync.model.fsmonitor.MAX_LINE` bytes, read within
:data:`~vsync.model.fsmonitor.TIMEOUT`; at most :data:`MAX_CLIENTS` are answered
at once (others are closed unanswered, and walk).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from vsync.model.fsmonitor import (
    MAGIC,
    MAX_BODY,
    MAX_LINE,
    SOCKET_NAME,
    TIMEOUT,
    UCRED,
    VERSION,
    parse_token,
    socket_address,
    token_text,
)
from vsync.sync.watch.monitor import Changes, FolderMonitor

MAX_CLIENTS = 16


def answer_bytes(changes: Changes) -> bytes:
    """The answer's bytes (docs/format.md, "The fsmonitor socket")."""
    token = token_text(changes.token).encode("ascii")
    if changes.paths is None or changes.token is None:
        reason = (changes.reason or "unknown").encode("ascii")
        return b"%s %d full %s %s\n" % (MAGIC, VERSION, token, reason)
    try:
        body = b"".join(p.encode("utf-8") + b"\0" for p in changes.paths)
    except UnicodeEncodeError:  # a name that is not UTF-8: the scan warns about it
        return answer_bytes(Changes(changes.token, None, "undecodable"))
    if len(body) > MAX_BODY:
        return answer_bytes(Changes(changes.token, None, "too-many"))
    head = b"%s %d changes %s %d %d\n" % (MAGIC, VERSION, token, len(changes.paths), len(body))
    return head + body


def parse_request(line: bytes) -> tuple[bool, Changes | None, str]:
    """(well formed, the answer when it is not, the token text asked about)."""
    words = line.split(b" ")
    if len(words) != 4 or words[0] != MAGIC or words[2] != b"since":
        return False, Changes(None, None, "bad-request"), ""
    if words[1] != str(VERSION).encode():
        return False, Changes(None, None, "unsupported-version"), ""
    try:
        text = words[3].decode("ascii")
    except UnicodeDecodeError:
        return False, Changes(None, None, "bad-request"), ""
    if text != "-" and parse_token(text) is None:
        return False, Changes(None, None, "bad-request"), ""
    return True, None, text


class QueryServer:
    def __init__(self, control: Path, monitor: FolderMonitor) -> None:
        self.control = control
        self.monitor = monitor
        self.path = control / SOCKET_NAME
        self._sock: socket.socket | None = None
        self._ident: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._thread = threading.Thread(target=self._serve, name="vsync-fsmonitor-socket")
        self._thread.daemon = True

    def start(self) -> None:
        tmp_name = f"{SOCKET_NAME}.tmp-{os.getpid()}"
        tmp = self.control / tmp_name
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        address, fd = socket_address(self.control, tmp_name)
        try:
            sock.bind(address)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)  # a stale socket of a killed watcher goes
            st = os.lstat(self.path)
            self._ident = (st.st_dev, st.st_ino)
            sock.listen(MAX_CLIENTS)
            sock.settimeout(0.5)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            if fd is not None:
                os.close(fd)
        self._sock = sock
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._ident:
                os.unlink(self.path)

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()  # too many at once: that client walks the folder
                continue
            threading.Thread(
                target=self._answer, args=(conn,), name="vsync-fsmonitor-answer", daemon=True
            ).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
                _pid, uid, _gid = UCRED.unpack(creds)
                if uid != os.getuid():
                    return  # another user: closed unanswered
                line = _read_request(conn)
                if line is None:
                    return
                ok, refusal, text = parse_request(line)
                if not ok:
                    assert refusal is not None
                    conn.sendall(answer_bytes(refusal))
                    return
                since = None if text == "-" else parse_token(text)
                conn.sendall(answer_bytes(self.monitor.changes_since(since)))
        except OSError:
            pass
        finally:
            self._slots.release()


def _read_request(conn: socket.socket) -> bytes | None:
    """The request line without its newline; None if it is too long or too slow."""
    deadline = time.monotonic() + TIMEOUT
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) >= MAX_LINE:
            return None
        conn.settimeout(left)
        chunk = conn.recv(MAX_LINE)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    if rest or len(line) >= MAX_LINE:
        return None
    return line
