"""Asking a running watcher what changed in the folder (the fsmonitor client).

A ``vsync watch`` answers on a Unix socket in the control folder, ``fsmonitor.sock``
(docs/format.md, "The fsmonitor socket"): the client sends the token it last saw,
the watcher answers its current token and the paths changed since that token, or
"full" (a token of another watcher instance, events lost, not watching yet, too
many changes): the caller then walks the whole folder, as it does without a
watcher. The watcher answers only after it has seen the event of a *cookie* file
it creates on each question, so every change made before the question is in the
answer.

Any doubt is None here (no watcher, a socket or a peer of another user, a refused
or slow connection, an answer that breaks the format): the caller takes the full
path. Nothing of the answer is
trusted beyond its shape: sizes are bounded before they are read and every path
is checked to be a plain relative path.
"""

from __future__ import annotations

import _socket as socket  # not socket: its enums cost every status a few ms to load
import contextlib
import os
import stat
import struct
import time
from pathlib import Path
from typing import NamedTuple

from vsync.model.statcache import MonitorToken

SOCKET_NAME = "fsmonitor.sock"
COOKIE_PREFIX = "fsmonitor-cookie-"
MAGIC = b"vsync-fsmonitor"
VERSION = 1
TIMEOUT = 1.0  # seconds a question may take in all before the caller walks instead
MAX_LINE = 256  # a request or an answer's first line, newline included
MAX_PATHS = 100_000  # an answer lists at most this many paths ...
MAX_BODY = 16 << 20  # ... in at most this many bytes
SUN_PATH_MAX = 107  # sockaddr_un's sun_path, less its NUL
UCRED = struct.Struct("3i")  # SO_PEERCRED: pid, uid, gid


class Answer(NamedTuple):
    """The watcher's answer: its token now (None: it is not watching trustworthily,
    so it has none), and the paths changed since the token asked about (None: unknown,
    walk the whole folder; ``reason`` says why)."""

    token: MonitorToken | None
    paths: list[str] | None
    reason: str = ""


def token_text(token: MonitorToken | None) -> str:
    if token is None:
        return "-"
    return f"{token[0].hex()}:{token[1]}"


def parse_token(text: str) -> MonitorToken | None:
    """The token ``text`` names, or None if it is ``-`` or malformed."""
    instance, sep, seq = text.partition(":")
    if not sep or len(instance) != 32 or not seq.isdigit() or len(seq) > 19:
        return None
    try:
        raw = bytes.fromhex(instance)
    except ValueError:
        return None
    number = int(seq)
    if number >= 1 << 63:
        return None
    return (raw, number)


def request_line(since: MonitorToken | None) -> bytes:
    return b"%s %d since %s\n" % (MAGIC, VERSION, token_text(since).encode("ascii"))


def safe_path(path: str) -> bool:
    """A plain relative path: no empty, ``.`` or ``..`` part, no leading ``/``."""
    if not path or path.startswith("/") or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def parse_answer(head: bytes, body: bytes) -> Answer | None:
    """The answer whose first line (without its newline) is ``head`` and whose paths
    are ``body``; None if either breaks the format."""
    try:
        words = head.decode("ascii").split(" ")
    except UnicodeDecodeError:
        return None
    if len(words) < 4 or words[0] != MAGIC.decode() or words[1] != str(VERSION):
        return None
    kind, token_word = words[2], words[3]
    token = parse_token(token_word)
    if token is None and token_word != "-":
        return None
    if kind == "full" and len(words) == 5:
        return Answer(token, None, words[4]) if not body else None
    if kind != "changes" or len(words) != 6 or token is None:
        return None
    if not words[4].isdigit() or not words[5].isdigit():
        return None
    count, size = int(words[4]), int(words[5])
    if count > MAX_PATHS or size > MAX_BODY or size != len(body):
        return None
    if count == 0:
        return Answer(token, []) if not body else None
    if not body.endswith(b"\0"):
        return None
    try:
        paths = body[:-1].decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None
    if len(paths) != count or not all(map(safe_path, paths)):
        return None
    return Answer(token, paths)


def socket_address(control: Path, name: str = SOCKET_NAME) -> tuple[str, int | None]:
    """Where to bind or connect for the socket ``name`` in ``control``: its path, or
    (when that is too long for a socket address) its name under ``/proc/self/fd/<fd>``
    of an open descriptor of the control folder, which the caller closes."""
    path = os.path.join(control, name)
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path, None
    fd = os.open(control, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def ask(control: Path, since: MonitorToken | None, timeout: float = TIMEOUT) -> Answer | None:
    """What changed since ``since``, as the watcher of ``control``'s folder says; None
    when no watcher answers well within ``timeout`` seconds."""
    try:
        st = os.lstat(os.path.join(control, SOCKET_NAME))
    except OSError:
        return None  # no watcher (the usual case): not even a connect
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return None  # not a socket this user's watcher made
    deadline = time.monotonic() + timeout
    try:
        address, fd = socket_address(control)
    except OSError:
        return None
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.settimeout(timeout)
            s.connect(address)
            creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
            if UCRED.unpack(creds)[1] != os.getuid():
                return None  # served by another user
            s.sendall(request_line(since))
            head, rest = _read_line(s, deadline)
            if head is None:
                return None
            body = _read_body(s, head, rest, deadline)
            if body is None:
                return None
            return parse_answer(head, body)
        finally:
            s.close()
    except (OSError, ValueError):
        return None
    finally:
        if fd is not None:
            os.close(fd)


def _recv(s: socket.socket, deadline: float, limit: int) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    s.settimeout(left)
    return s.recv(limit)


def _read_line(s: socket.socket, deadline: float) -> tuple[bytes | None, bytes]:
    buf = b""
    while b"\n" not in buf:
        if len(buf) >= MAX_LINE:
            return None, b""
        chunk = _recv(s, deadline, 65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\n")
    if len(head) >= MAX_LINE:
        return None, b""
    return head, rest


def _read_body(s: socket.socket, head: bytes, rest: bytes, deadline: float) -> bytes | None:
    """The bytes after the first line: as many as a ``changes`` answer declares (bounded
    first), none for any other; None if the peer sends more or fewer."""
    words = head.split(b" ")
    want = 0
    if len(words) == 6 and words[2] == b"changes" and words[5].isdigit():
        want = int(words[5])
        if want > MAX_BODY:
            return None
    parts = [rest]
    got = len(rest)
    while got < want:
        chunk = _recv(s, deadline, min(want - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    if got > want:
        return None
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    return b"".join(parts)
