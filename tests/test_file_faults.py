"""Files that misbehave while vsync reads the folder (issue 12, "Faults").

A file that grows while a commit reads it (a download in progress) is never
committed torn, and the commit's memory stays flat however large it grows.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import hostile_peer as hp
from conftest import run_vsync

VSYNC = [sys.executable, "-m", "vsync"]
ENV = {"VSYNC_AUTHOR_NAME": "T", "VSYNC_AUTHOR_EMAIL": "t@example.com", "VSYNC_HOST": "h"}

GROWN = 384 << 20  # what the download reaches, in sparse zeros appended after the scan
GROW_SECONDS = 1.5  # how long it takes; the commit waits HOLD seconds after its scan
HOLD = 1.0
LIMIT_MIB = 160  # the commit's peak RSS: well below GROWN


def _grow_after_scan(path: Path, trace: Path, stop: threading.Event) -> None:
    """Once the commit has scanned, append zeros to ``path`` until it is GROWN bytes.

    The size follows the clock (ftruncate, so the appended zeros are sparse):
    at any moment the file is its first bytes followed by zeros.
    """
    while not stop.is_set():
        if trace.exists() and "folder-scanned" in trace.read_text():
            break
        time.sleep(0.002)
    start, first = time.monotonic(), path.stat().st_size
    while not stop.is_set():
        done = min(1.0, (time.monotonic() - start) / GROW_SECONDS)
        os.truncate(path, first + int((GROWN - first) * done))
        if done >= 1.0:
            return
        time.sleep(0.005)


def _digest_of(head: bytes, size: int) -> str:
    """The hash of ``head`` followed by zeros up to ``size`` bytes, computed in steps."""
    h = hashlib.sha256(head)
    zeros = bytes(1 << 20)
    left = size - len(head)
    while left > 0:
        h.update(zeros[: min(left, len(zeros))])
        left -= len(zeros)
    return h.hexdigest()


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def test_a_file_growing_during_commit_is_never_torn_and_memory_stays_flat(
    work: Path, tmp_path: Path
) -> None:
    head = os.urandom(64 << 10)  # small when scanned: the batch reader's case
    download = work / "download.bin"
    download.write_bytes(head)
    (work / "notes.txt").write_text("notes\n")
    trace = tmp_path / "trace"
    stop = threading.Event()
    writer = threading.Thread(target=_grow_after_scan, args=(download, trace, stop))
    writer.start()
    env = {
        **os.environ,
        **ENV,
        "VSYNC_FAULTS": f"commit/folder-scanned=sleep:{HOLD}",
        "VSYNC_FAULTS_TRACE": str(trace),
    }
    try:
        rc, _out, err, peak = hp.maxrss_of([*VSYNC, "commit", "-m", "grow"], work, env)
    finally:
        stop.set()
        writer.join()
    assert rc == 0, err
    assert "Traceback" not in err
    assert trace.read_text().count("folder-scanned") == 1
    assert download.stat().st_size == GROWN, "the download did not grow during the commit"
    assert peak < LIMIT_MIB, f"commit peaked at {peak:.0f} MiB reading a growing file"
    listed = run_vsync("status", "--porcelain", cwd=work).stdout
    if "skipping 'download.bin': it kept changing" in err:
        # Skipped with the usual warning: not in the commit (it had no earlier version).
        assert "?? download.bin" in listed
        return
    # Committed: the version recorded is one the file really had, a whole prefix.
    run_vsync("restore", "--force", "download.bin", cwd=work)
    size = download.stat().st_size
    assert len(head) <= size <= GROWN
    assert _digest_file(download) == _digest_of(head, size)
    assert "download.bin" not in run_vsync("status", "--porcelain", cwd=work).stdout
    run_vsync("fsck", cwd=work)
