"""Reading a byte stream in large pieces and handing it out by message: the one
reader under both ends of a session (:class:`vsync.sync.transport.StreamTransport`,
the client's; :class:`vsync.sync.fdpipe.FdPipe`, ``vsync serve``'s)."""

from __future__ import annotations


class BufferedReads:
    """``read`` and ``readexactly`` over ``_recv``. Each read asks the OS for at least
    ``read_size`` bytes (one syscall per MiB, not per message); a message is sliced
    from what is buffered (one copy), and one that runs past it is joined from its
    pieces."""

    read_size = 1024 * 1024
    _rbuf: bytes = b""  # read and not yet taken: from _rpos on
    _rpos: int = 0

    def _recv(self, n: int) -> bytes:
        """Up to ``n`` bytes from the stream (counted as received); b"" at its end."""
        raise NotImplementedError

    def _closed_error(self) -> Exception:
        """What ``readexactly`` raises when the stream ends inside a message."""
        raise NotImplementedError

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (at least one unless at the end); b"" at the end."""
        if self._rpos == len(self._rbuf):
            self._rbuf, self._rpos = self._recv(self.read_size), 0
        out = self._rbuf[self._rpos : self._rpos + n]
        self._rpos += len(out)
        return out

    def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :meth:`_closed_error` if the stream ends first."""
        have = len(self._rbuf) - self._rpos
        if have >= n:
            out = self._rbuf[self._rpos : self._rpos + n]
            self._rpos += n
            return out
        parts = [self._rbuf[self._rpos :]] if have else []
        self._rbuf, self._rpos = b"", 0
        need = n - have
        while need:
            data = self._recv(max(need, self.read_size))
            if not data:
                raise self._closed_error()
            if len(data) > need:  # the rest starts the next message
                self._rbuf, self._rpos = data, need
                data = data[:need]
            parts.append(data)
            need -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)
