"""The C heap's retention rule, set once at start-up (glibc only).

glibc raises its mmap threshold each time a large block allocated by mmap is
freed (up to 32 MiB), so that later blocks of that size come from the heap of
the thread that asks; what is freed there is kept unless more than twice that
threshold sits free at the top. A transfer allocates and frees chunk payloads
of 64 KiB-16 MiB on three or four threads (the protocol, the verifier, the pack
writer), so each thread's heap keeps its high-water mark: a `vsync fetch` of a
1 GiB file peaked at 170-190 MiB of RSS for 60 MiB that Python held.

Setting the trim threshold explicitly turns that adjustment off (mallopt(3)):
blocks of 128 KiB or more are mapped and unmapped on their own again, and free
space over 8 MiB at the top of a heap is given back. The same fetch then peaks
at about 90 MiB, for no measured CPU cost (measured by hand; the benchmarks' crypt and
receive groups report every transfer's peak RSS).
Elsewhere than glibc (musl, macOS) nothing is done.
"""

from __future__ import annotations

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
TRIM_THRESHOLD = 8 * 1024 * 1024


def keep_heap_small() -> bool:
    """Set glibc's trim threshold (turning off its dynamic mmap threshold); whether
    it was set."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc's alone: not musl's mallopt
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
