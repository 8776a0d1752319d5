"""The C heap gives back what a transfer frees (vsync/cli/heap.py): glibc's dynamic
mmap threshold is off in every vsync process, so large blocks freed on any thread
leave the process instead of staying in that thread's heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Free a 4 MiB block (glibc then raises its mmap threshold to 4 MiB, unless told
# not to), then take 48 blocks of 1 MiB and free all but the last: with the
# threshold raised they come from the heap, and the last one pins the free space
# below it; with it off each was mapped on its own and is gone. Prints the RSS
# still held, in MiB, over what the process held before.
PATTERN = """
import sys
{setup}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
big = bytearray(4 << 20); del big
before = rss()
blocks = [bytearray(1 << 20) for _ in range(48)]
last = blocks.pop()
del blocks
print(round(rss() - before, 1))
"""


def retained(setup: str) -> float:
    code = PATTERN.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_the_pattern_retains_memory_without_the_setting() -> None:
    """The pattern below would catch nothing if this glibc kept nothing anyway."""
    assert retained("") > 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_every_vsync_process_gives_freed_blocks_back() -> None:
    setup = (
        "import contextlib, io\n"
        "from vsync.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--version'])\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert retained(setup) < 8
