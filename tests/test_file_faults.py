"""Files that misbehave while vsync reads the folder (issue 12, "Faults").

A file that grows while a commit reads it (a download in progress) is never
committed torn, and the commit's memory stays flat however large it grows.
Files and folders the user running vsync cannot read are skipped with a
warning naming them, keep the version the last commit has (never recorded as
deleted), and ``vsync status`` lists them as skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hostile_peer as hp
import pytest
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


# -- unreadable files and folders ----------------------------------------------------------

NOBODY = 65534
SETPRIV = shutil.which("setpriv")


@pytest.fixture
def user_folder() -> Iterator[Path]:
    """A working folder owned by an unprivileged user, in a temporary folder it can reach.

    Root reads everything whatever its mode, so the vsync commands of these
    tests run as that user (:func:`_as_user`); a test run that is not root
    is such a user already.
    """
    if os.geteuid() == 0 and SETPRIV is None:
        pytest.skip("setpriv (util-linux) is missing: cannot run vsync as an unprivileged user")
    top = Path(tempfile.mkdtemp(prefix="vsync-unreadable-", dir="/tmp"))
    try:
        work = top / "work"
        work.mkdir()
        if os.geteuid() == 0:
            os.chown(top, NOBODY, NOBODY)
            os.chown(work, NOBODY, NOBODY)
            probe = _as_user("-c", "import vsync", cwd=work, module=False)
            assert probe.returncode == 0, (
                f"{sys.executable} cannot import vsync as uid {NOBODY}: {probe.stderr}"
            )
        _as_user("init", cwd=work, check=True)
        yield work
    finally:
        for dirpath, dirs, _files in os.walk(top):
            for name in dirs:
                os.chmod(os.path.join(dirpath, name), 0o700)
        shutil.rmtree(top)


def _as_user(
    *args: str, cwd: Path, check: bool = False, module: bool = True
) -> subprocess.CompletedProcess[str]:
    """``vsync ARGS`` (or ``python ARGS`` when not ``module``) as the unprivileged user."""
    argv = [*VSYNC, *args] if module else [sys.executable, *args]
    if os.geteuid() == 0:
        assert SETPRIV is not None
        argv = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    env = {**os.environ, **ENV, "HOME": str(cwd.parent)}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"vsync {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
        os.chown(path.parent, NOBODY, NOBODY)


def _committed(work: Path, into: Path) -> dict[str, str]:
    """Every file of ``work``'s last commit with its content (cloned, as root, into ``into``)."""
    run_vsync("clone", str(work), str(into), cwd=into.parent)
    return {
        str(p.relative_to(into)): p.read_text()
        for p in into.rglob("*")
        if p.is_file() and ".vsync" not in p.relative_to(into).parts
    }


def test_unreadable_files_and_folders_are_skipped_and_keep_their_committed_version(
    user_folder: Path, tmp_path: Path
) -> None:
    work = user_folder
    _write(work / "keep.txt", "keep 1\n")
    _write(work / "secret.txt", "secret 1\n")
    _write(work / "private/a.txt", "a 1\n")
    _write(work / "private/sub/b.txt", "b 1\n")
    _write(work / "open/c.txt", "c 1\n")
    _as_user("commit", "-m", "first", cwd=work, check=True)
    # Edits the next commit records; then files and folders it cannot read.
    _write(work / "keep.txt", "keep 2\n")
    _write(work / "new.txt", "new\n")
    _write(work / "fresh-secret.txt", "never committed\n")
    _write(work / "fresh-dir/d.txt", "never committed\n")
    for unreadable in ("secret.txt", "private", "fresh-secret.txt", "fresh-dir"):
        os.chmod(work / unreadable, 0)

    listed = _as_user("status", cwd=work, check=True)
    human = listed.stdout
    assert "deleted" not in human, human
    skipped = human[human.index("Skipped") :]
    for name in ("fresh-dir", "fresh-secret.txt", "private", "secret.txt"):
        assert f"  {name}\n" in skipped, human
    assert "modified:     keep.txt" in human and "new file:     new.txt" in human, human
    porcelain = _as_user("status", "--porcelain", cwd=work, check=True).stdout.splitlines()
    assert sorted(porcelain) == [
        " M keep.txt",
        "!S fresh-dir",
        "!S fresh-secret.txt",
        "!S private",
        "!S secret.txt",
        "?? new.txt",
    ]

    done = _as_user("commit", "-m", "second", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert " 6 files," in done.stdout, done.stdout
    for name in ("secret.txt", "private", "fresh-secret.txt", "fresh-dir"):
        assert any(
            f"'{name}'" in line and "unreadable" in line for line in done.stderr.splitlines()
        ), done.stderr
    # Everything else is recorded; what was committed before stays as it was.
    assert _committed(work, tmp_path / "copy") == {
        "keep.txt": "keep 2\n",
        "new.txt": "new\n",
        "open/c.txt": "c 1\n",
        "secret.txt": "secret 1\n",
        "private/a.txt": "a 1\n",
        "private/sub/b.txt": "b 1\n",
    }
    # Readable again, they read as they are: unchanged, or new.
    modes = {"secret.txt": 0o644, "private": 0o755, "fresh-secret.txt": 0o644, "fresh-dir": 0o755}
    for name, mode in modes.items():
        os.chmod(work / name, mode)
    again = _as_user("status", "--porcelain", cwd=work, check=True).stdout.splitlines()
    assert sorted(again) == ["?? fresh-dir/d.txt", "?? fresh-secret.txt"]
    _as_user("fsck", cwd=work, check=True)
