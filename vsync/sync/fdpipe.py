"""A blocking, buffered byte pipe over two file descriptors (the server's stdio)."""

from __future__ import annotations

import contextlib
import fcntl
import os

from vsync.sync.errors import TransportClosed

READ_SIZE = 1024 * 1024
WRITE_FLUSH = 1024 * 1024
PIPE_SIZE = 1 << 20  # Linux pipe capacity asked for (F_SETPIPE_SZ)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class FdPipe:
    def __init__(self, read_fd: int, write_fd: int, where: str = "the client") -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.where = where
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        # sshd's pipes hold 64 KiB: every 64 KiB would cost a wake-up on both
        # sides. Not a pipe (a socket, a file): nothing to do.
        for fd in (read_fd, write_fd):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)

    def read(self, n: int) -> bytes:
        if not self._rbuf:
            data = os.read(self.read_fd, max(n, READ_SIZE))
            self.bytes_received += len(data)
            self._rbuf += data
        out = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return out

    def readexactly(self, n: int) -> bytes:
        while len(self._rbuf) < n:
            data = os.read(self.read_fd, max(n - len(self._rbuf), READ_SIZE))
            if not data:
                raise TransportClosed(self.where)
            self.bytes_received += len(data)
            self._rbuf += data
        with memoryview(self._rbuf) as view:
            out = bytes(view[:n])  # one copy (a bytearray slice would make two)
        del self._rbuf[:n]
        return out

    def write(self, data: bytes) -> None:
        self._wbuf += data
        if len(self._wbuf) >= WRITE_FLUSH:
            self.flush()

    def flush(self) -> None:
        view = memoryview(self._wbuf)
        while view:
            try:
                n = os.write(self.write_fd, view)
            except BrokenPipeError:
                raise TransportClosed(self.where) from None
            self.bytes_sent += n
            view = view[n:]
        view.release()
        self._wbuf.clear()
