"""The stat cache's racy window: 100 ms on a local file system with nanosecond stamps,
2 s anywhere else (vsync/model/racy_window.py).

A file hashed within the window of its last change is hashed again next time; outside
it, its entry is trusted. The window may be short only where the local kernel stamps
the files with a clock no coarser than a scheduler tick.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import Run

from vsync.model.racy_window import (
    COARSE_NS,
    FINE_NS,
    folder_filesystem,
    folder_window_ns,
    window_for,
)
from vsync.model.statcache import StatCache

MOUNTS = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:30 / /home/u/usb rw - vfat /dev/sdb1 rw
31 22 0:31 / /home/u/nfs\\040share rw - nfs4 srv:/x rw
32 22 254:1 / /data rw shared:7 master:1 - xfs /dev/vdb rw
33 32 0:33 / /data/work/scratch rw - tmpfs tmpfs rw
34 22 254:2 / /srv rw - ext4 /dev/vdc rw
35 22 0:35 / /srv rw - fuse.sshfs host:/srv rw
"""


def test_the_file_system_of_a_folder_comes_from_mountinfo() -> None:
    assert folder_filesystem(MOUNTS, "/home/u/work") == "ext4"
    assert folder_filesystem(MOUNTS, "/home/u/usb/photos") == "vfat"
    assert folder_filesystem(MOUNTS, "/home/u/nfs share/a") == "nfs4"  # \040 is a space
    assert folder_filesystem(MOUNTS, "/data/other") == "xfs"  # optional fields skipped
    assert folder_filesystem(MOUNTS, "/srv/x") == "fuse.sshfs"  # the later mount is on top


def test_a_mount_inside_the_folder_makes_no_claim() -> None:
    """Files under /data/work/scratch are stamped by another file system than the
    folder's own: nothing is claimed, and the folder gets the coarse window."""
    assert folder_filesystem(MOUNTS, "/data/work") is None
    assert folder_filesystem(MOUNTS, "/data/work/scratch") == "tmpfs"  # its own root
    assert folder_filesystem("what is this\n", "/x") is None


def test_only_whole_second_stamps_get_the_coarse_window_on_a_fine_folder() -> None:
    assert window_for(5_123_456_789, 5_123_456_790, FINE_NS) == FINE_NS
    assert window_for(5_000_000_000, 5_123_456_790, FINE_NS) == COARSE_NS  # ext3's seconds
    assert window_for(5_123_456_789, 6_000_000_000, FINE_NS) == COARSE_NS
    assert window_for(5_123_456_789, 5_123_456_790, COARSE_NS) == COARSE_NS


def _stamped(path: Path, mtime_ns: int) -> os.stat_result:
    path.write_bytes(b"one")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return os.lstat(path)


def test_an_entry_is_trusted_once_its_change_is_past_the_window(tmp_path: Path) -> None:
    """On the test's local file system (ext4 or tmpfs: nanosecond stamps), an entry
    hashed 150 ms after the file's last change is trusted, one hashed 50 ms after it
    is not; with whole-second stamps, 1.5 s after is not enough either."""
    assert folder_window_ns(str(tmp_path)) == FINE_NS, "the tests need a local ext4/tmpfs"
    folder = tmp_path / "w"
    folder.mkdir()
    control = folder / ".vsync"
    control.mkdir()
    oid = b"ab" * 20
    fine = _stamped(folder / "fine", time.time_ns() - 10**9 + 123_457)
    whole = _stamped(folder / "whole", (time.time_ns() // 10**9 - 1) * 10**9)
    newest = max(fine.st_ctime_ns, fine.st_mtime_ns)
    cache = StatCache(control)
    cache.record("fine-50ms", fine, oid, newest + 50_000_000)
    cache.record("fine-150ms", fine, oid, newest + 150_000_000)
    # whole seconds: mtime is; ctime (the kernel's, now) is not, and either is enough
    cache.record("whole-1.5s", whole, oid, max(whole.st_ctime_ns, whole.st_mtime_ns) + 15 * 10**8)
    cache.flush()
    again = StatCache(control)
    assert again.lookup("fine-50ms", fine) is None
    assert again.lookup("fine-150ms", fine) == oid
    assert again.lookup("whole-1.5s", whole) is None


def test_status_trusts_a_file_committed_a_moment_after_its_change(work: Path, vsync) -> None:
    """A commit 0.3 s after the last edit leaves trusted entries: the next status reads
    no file (it records no new hashing time), where the 2 s window re-read every one."""
    (work / "a.txt").write_bytes(b"a\n" * 1000)
    (work / "b.txt").write_bytes(b"b\n" * 1000)
    time.sleep(0.3)
    vsync("commit", "-m", "one")
    before = {p: StatCache(work / ".vsync").get(p) for p in ("a.txt", "b.txt")}
    out: Run = vsync("status", "--porcelain")
    assert out.stdout == ""
    after = {p: StatCache(work / ".vsync").get(p) for p in ("a.txt", "b.txt")}
    assert before == after
    assert all(row is not None and row[4] != 0 for row in after.values())  # not smudged
