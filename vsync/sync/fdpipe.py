"""A blocking, buffered byte pipe over two file descriptors (the server's stdio).

Every wait for the peer is bounded by the idle timeout: no byte received (or
none taken) for that long ends the transfer with :class:`Stalled`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select

from vsync.sync.buffered_reads import BufferedReads
from vsync.sync.errors import Stalled, TransportClosed

READ_SIZE = 1024 * 1024
WRITE_FLUSH = 1024 * 1024
PIPE_SIZE = 1 << 20  # Linux pipe capacity asked for (F_SETPIPE_SZ)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def wait_ready(fd: int, writing: bool, timeout: float | None) -> bool:
    """Whether ``fd`` can be read (or written) within ``timeout`` seconds (None: for
    ever). An error or a hang-up counts as ready: the read or write that follows
    reports it."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT if writing else select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(1, int(timeout * 1000))))


class FdPipe(BufferedReads):
    read_size = READ_SIZE

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        where: str = "the client",
        idle_timeout: float | None = None,
    ) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.where = where
        self.idle_timeout = idle_timeout  # seconds without a byte moving; None: no limit
        self._wbuf = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0
        # sshd's pipes hold 64 KiB: every 64 KiB would cost a wake-up on both
        # sides. Not a pipe (a socket, a file): nothing to do.
        for fd in (read_fd, write_fd):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
        with contextlib.suppress(OSError):
            os.set_blocking(write_fd, False)  # a write waits in poll, with the timeout

    def _read_some(self, n: int) -> bytes:
        while True:
            if not wait_ready(self.read_fd, False, self.idle_timeout):
                assert self.idle_timeout is not None
                raise Stalled(self.where, self.idle_timeout)
            try:
                return os.read(self.read_fd, n)
            except BlockingIOError:  # stdin shares its description with stdout
                continue

    def readable(self, timeout: float) -> bool:
        """Whether a read would not wait: bytes buffered, or the peer sent (or closed)
        within ``timeout`` seconds. Never raises Stalled (a watch session polls with it)."""
        return self._rpos < len(self._rbuf) or wait_ready(self.read_fd, False, timeout)

    def _recv(self, n: int) -> bytes:
        data = self._read_some(n)
        self.bytes_received += len(data)
        return data

    def _closed_error(self) -> Exception:
        return TransportClosed(self.where)

    def write(self, data: bytes | bytearray) -> None:
        self._wbuf += data
        if len(self._wbuf) >= WRITE_FLUSH:
            self.flush()

    def flush(self) -> None:
        view = memoryview(self._wbuf)
        try:
            while view:
                try:
                    n = os.write(self.write_fd, view)
                except BlockingIOError:
                    if not wait_ready(self.write_fd, True, self.idle_timeout):
                        assert self.idle_timeout is not None
                        raise Stalled(self.where, self.idle_timeout, sending=True) from None
                    continue
                except BrokenPipeError:
                    raise TransportClosed(self.where) from None
                self.bytes_sent += n
                view = view[n:]
        finally:
            view.release()
        self._wbuf.clear()
