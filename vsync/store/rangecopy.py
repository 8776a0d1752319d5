"""Copying byte ranges between two open files without passing them through Python.

A :class:`RangeCopier` appends ranges of a source file to a destination file
that it builds from the start (each range lands at the destination's current
end). Where the file system shares blocks between files (XFS, btrfs: a
*reflink*), the block-aligned middle of a range is cloned with the
``FICLONERANGE`` ioctl: nothing is read or written, the two files share those
blocks until one of them is written. A range can be cloned only when its
source and destination offsets lie at the same distance from a block boundary
(an edit that keeps the file's length; after an insertion of a few bytes the
ranges behind it are shifted and are copied instead). The unaligned ends, and
everything on a file system without clones (ext4), go through
``copy_file_range(2)``: the kernel copies page cache to page cache, no trip
through user space. Where even that is refused, ``pread``/``pwrite``.

Whether the file system clones at all is asked once, when the copier is made,
with a clone request that no file system carries out (an unaligned offset):
one without clones refuses the operation (``EOPNOTSUPP``), one with clones
refuses the argument (``EINVAL``). Where clones are not available,
:meth:`RangeCopier.reserve` allocates the destination's blocks up front with
``fallocate(2)``: ext4 then has no delayed allocation to force out when the
finished file is renamed over the old one (its ``auto_da_alloc`` rule starts
writing the whole new file back inside ``rename``), and the file is laid out in
one piece. A refusal of ``copy_file_range`` is remembered for the copier's life.

A source shorter than the range asked for (the file was truncated behind our
back) is :class:`SourceTooShort`; running out of space is the ``OSError`` the
kernel gave.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from typing import Final

# _IOW(0x94, 13, struct file_clone_range): linux/fs.h
FICLONERANGE: Final = 0x4020940D
# struct file_clone_range { __s64 src_fd; __u64 src_offset, src_length, dest_offset; }
_CLONE_RANGE = struct.Struct("=qQQQ")
# Errors that say "not here" (this file system, these files, this kernel), not
# "something went wrong": the next way of copying is tried instead.
_UNSUPPORTED = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EBADF}
)
_BLOCK = 1024 * 1024  # pread/pwrite and copy_file_range step


def _fallocate(fd: int, size: int) -> int:
    """fallocate(2) of ``size`` bytes from 0 (mode 0): 0, or the errno it failed with.
    Called directly: glibc's posix_fallocate would write the blocks one by one where
    the file system has no fallocate."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if _LIBC.fallocate(fd, 0, 0, size) == 0:
        return 0
    return ctypes.get_errno() or errno.EIO


_LIBC: ctypes.CDLL | None = None


class SourceTooShort(Exception):
    """The source file ended before the range to copy did."""


class RangeCopier:
    """Copies ranges from ``src`` (a file descriptor open for reading) to ``dst``
    (open for writing, built front to back). ``clone``: try reflink clones."""

    def __init__(self, src: int, dst: int, clone: bool = True) -> None:
        self.src = src
        self.dst = dst
        self.block = os.fstatvfs(dst).f_bsize or 4096
        self.can_clone = clone and self._clones()
        self.can_copy_range = True
        self.cloned = 0  # bytes shared by a clone (statistics for tests and benchmarks)
        self.copied = 0  # bytes copied

    def _clones(self) -> bool:
        """Whether the file system clones ranges: asked with an unaligned offset, which
        one that clones refuses as a bad argument and one that does not as unsupported."""
        arg = _CLONE_RANGE.pack(self.src, 1, self.block, 1)
        try:
            fcntl.ioctl(self.dst, FICLONERANGE, arg)
        except OSError as exc:
            return exc.errno == errno.EINVAL
        os.ftruncate(self.dst, 0)  # carried out after all (never seen): undone
        return True

    def reserve(self, size: int) -> None:
        """Allocate the destination's first ``size`` bytes now, unless ranges will be
        cloned (they bring their own blocks). Where ``fallocate`` is not supported,
        nothing happens; a full disk is the ``OSError`` it gave."""
        if self.can_clone or size <= 0:
            return
        failed = _fallocate(self.dst, size)
        if failed not in (0, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(failed, os.strerror(failed))

    def copy(self, src_offset: int, dst_offset: int, length: int) -> None:
        """Put ``length`` bytes of the source from ``src_offset`` at ``dst_offset``."""
        if length <= 0:
            return
        if self.can_clone and (src_offset - dst_offset) % self.block == 0:
            head = -dst_offset % self.block
            middle = (length - head) // self.block * self.block if length > head else 0
            if middle > 0 and self._clone(src_offset + head, dst_offset + head, middle):
                self._copy(src_offset, dst_offset, head)
                tail = head + middle
                self._copy(src_offset + tail, dst_offset + tail, length - tail)
                return
        self._copy(src_offset, dst_offset, length)

    def _clone(self, src_offset: int, dst_offset: int, length: int) -> bool:
        arg = _CLONE_RANGE.pack(self.src, src_offset, length, dst_offset)
        try:
            fcntl.ioctl(self.dst, FICLONERANGE, arg)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self.can_clone = False
            return False
        if os.fstat(self.src).st_size < src_offset + length:
            raise SourceTooShort()  # a clone past the end is cut short, not refused
        self.cloned += length
        return True

    def _copy(self, src_offset: int, dst_offset: int, length: int) -> None:
        end = src_offset + length
        while src_offset < end:
            want = min(_BLOCK * 64, end - src_offset)
            n = -1
            if self.can_copy_range:
                try:
                    n = os.copy_file_range(self.src, self.dst, want, src_offset, dst_offset)
                except OSError as exc:
                    if exc.errno not in _UNSUPPORTED:
                        raise
                    self.can_copy_range = False
            if n < 0:
                n = self._pcopy(src_offset, dst_offset, min(want, _BLOCK))
            if n == 0:
                raise SourceTooShort()
            src_offset += n
            dst_offset += n
            self.copied += n

    def _pcopy(self, src_offset: int, dst_offset: int, length: int) -> int:
        data = os.pread(self.src, length, src_offset)
        view = memoryview(data)
        while view:
            done = os.pwrite(self.dst, view, dst_offset)
            view = view[done:]
            dst_offset += done
        return len(data)
