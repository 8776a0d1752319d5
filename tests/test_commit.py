"""commit and status through the real CLI: snapshots, stat cache, torn reads, hooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

from conftest import Run, racy_wait, run_vsync


def porcelain(vsync: object) -> list[str]:
    out: Run = vsync("status", "--porcelain")  # type: ignore[operator]
    return out.stdout.splitlines()


def store_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root / ".vsync"):
        if os.path.basename(dirpath) == "hooks":
            continue
        for name in files:
            if name.startswith("state.db"):
                continue
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def test_status_codes_sorted_and_commit_clears_them(work: Path, vsync) -> None:
    (work / "b.txt").write_text("b\n")
    (work / "a.txt").write_text("a\n")
    (work / "dir").mkdir()
    (work / "dir" / "c.bin").write_bytes(b"\0\1\2")
    assert porcelain(vsync) == ["?? a.txt", "?? b.txt", "?? dir/c.bin"]
    vsync("commit", "-m", "first")
    assert porcelain(vsync) == []
    (work / "a.txt").write_text("changed\n")
    (work / "b.txt").unlink()
    (work / "new.txt").write_text("n\n")
    os.chmod(work / "dir" / "c.bin", 0o755)
    assert porcelain(vsync) == [" M a.txt", " D b.txt", " M dir/c.bin", "?? new.txt"]
    human = vsync("status").stdout
    assert "modified:" in human and "deleted:" in human and "new file:" in human


def test_nothing_to_commit_makes_no_commit(work: Path, vsync) -> None:
    (work / "f").write_text("x")
    vsync("commit", "-m", "one")
    head = (work / ".vsync/git/refs/heads/main").read_text()
    out = vsync("commit", "-m", "two")
    assert out.returncode == 0
    assert "nothing to commit" in out.stdout
    assert (work / ".vsync/git/refs/heads/main").read_text() == head


def test_empty_repository_commit_is_a_no_op(work: Path, vsync) -> None:
    out = vsync("commit", "-m", "nothing")
    assert "nothing to commit" in out.stdout
    assert not (work / ".vsync/git/refs/heads/main").exists()


def test_commit_records_author_host_and_time(work: Path, vsync) -> None:
    (work / "f").write_text("x")
    before = int(time.time())
    vsync("commit", "-m", "msg", env={"VSYNC_HOST": "laptop-7"})
    code = (
        "import sys; from vsync.model.repository import Repository as R;"
        "r=R.discover(); c=r.gitdb.commit(r.head());"
        "print(c.author.decode(), c.commit_time, c.header(b'vsync-host').decode());"
        "r.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True
    )
    author, when, host = out.stdout.rsplit(" ", 2)
    assert author == "Test Author <test@example.com>"
    assert before <= int(when) <= before + 60
    assert host.strip() == "laptop-7"


def test_ignore_file_uses_gitignore_syntax(work: Path, vsync) -> None:
    (work / ".vsyncignore").write_text("*.tmp\nbuild/\n!keep.tmp\n")
    (work / "a.tmp").write_text("x")
    (work / "keep.tmp").write_text("x")
    (work / "build").mkdir()
    (work / "build" / "out.o").write_text("x")
    (work / "src").mkdir()
    (work / "src" / "main.c").write_text("x")
    assert porcelain(vsync) == ["?? .vsyncignore", "?? keep.tmp", "?? src/main.c"]


def test_same_size_edit_with_restored_mtime_is_seen(work: Path, vsync) -> None:
    """The stat cache must not hide an edit that keeps size and mtime (racy clean)."""
    f = work / "f.txt"
    f.write_text("aaaa")
    vsync("commit", "-m", "one")
    st = f.stat()
    f.write_text("bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert porcelain(vsync) == [" M f.txt"]
    vsync("commit", "-m", "two")
    assert run_vsync("show", "HEAD:f.txt", cwd=work).stdout == "bbbb"


def test_status_second_run_uses_stat_cache(work: Path, vsync) -> None:
    """After a file is older than the racy window, status trusts the cache."""
    f = work / "big.bin"
    f.write_bytes(os.urandom(1 << 20))
    old = time.time() - 3600
    os.utime(f, (old, old))
    time.sleep(racy_wait())  # let the ctime leave the racy window too
    vsync("commit", "-m", "one")
    # A status that re-read the file would record a new hashing time.
    from vsync.model.statcache import StatCache

    row = StatCache(work / ".vsync").get("big.bin")
    assert row is not None
    assert porcelain(vsync) == []
    again = StatCache(work / ".vsync").get("big.bin")
    assert again is not None and again[5] == row[5]


def test_lost_state_db_is_rebuilt(work: Path, vsync) -> None:
    (work / "f.bin").write_bytes(os.urandom(300_000))
    vsync("commit", "-m", "one")
    for name in os.listdir(work / ".vsync"):
        if name.startswith("state.db"):
            os.unlink(work / ".vsync" / name)
    assert porcelain(vsync) == []
    (work / "g.bin").write_bytes(os.urandom(1000))
    vsync("commit", "-m", "two")
    assert run_vsync("show", "HEAD:f.bin", cwd=work).stdout_bytes == (work / "f.bin").read_bytes()


def test_damaged_state_db_is_rebuilt(work: Path, vsync) -> None:
    data = os.urandom(300_000)
    (work / "f.bin").write_bytes(data)
    vsync("commit", "-m", "one")
    for name in os.listdir(work / ".vsync"):
        if name.startswith("state.db-"):
            os.unlink(work / ".vsync" / name)
    (work / ".vsync" / "state.db").write_bytes(b"this is not sqlite" * 100)
    (work / "g.bin").write_bytes(b"more")
    out = vsync("commit", "-m", "two")
    assert out.returncode == 0
    assert run_vsync("show", "HEAD:f.bin", cwd=work).stdout_bytes == data


def test_dedup_after_small_insertion(work: Path, vsync) -> None:
    """A 10-byte insertion in the middle of 100 MB adds at most a few chunks."""
    size = 100 * 1024 * 1024
    f = work / "big.bin"
    with open(f, "wb") as out:  # never-repeating bytes, so nothing dedups by accident
        for _ in range(size // (4 << 20)):
            out.write(os.urandom(4 << 20))
    vsync("commit", "-m", "one")
    before = store_size(work)
    assert before > size  # the first commit really stored the 100 MB
    with open(f, "r+b") as fh:
        fh.seek(size // 2)
        tail = fh.read()
        fh.seek(size // 2)
        fh.write(b"0123456789" + tail)
    vsync("commit", "-m", "two")
    grown = store_size(work) - before
    assert grown < 2 * 1024 * 1024, grown
    assert porcelain(vsync) == []


def test_file_that_keeps_changing_is_skipped_not_torn(work: Path, vsync) -> None:
    (work / "stable.txt").write_text("stable")
    f = work / "hot.bin"
    f.write_bytes(os.urandom(32 * 1024 * 1024))
    # The writer never sleeps: a writer that paused between writes could be left off
    # the CPU for a whole read attempt on a loaded machine, and that read was stable.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os,sys,time\n"
            "fd=os.open(sys.argv[1], os.O_WRONLY)\n"
            "i=0\n"
            "end=time.time()+60\n"
            "while time.time()<end:\n"
            "    os.pwrite(fd, i.to_bytes(4,'big'), (i*7919) % (32*1024*1024-4)); i+=1\n",
            str(f),
        ]
    )
    try:
        time.sleep(0.3)
        out = vsync("commit", "-m", "while hot")
    finally:
        writer.kill()
        writer.wait()
    assert "hot.bin" in out.stderr and "kept changing" in out.stderr
    listing = run_vsync("show", "HEAD:", cwd=work, check=False).stdout
    assert "stable.txt" in listing
    assert "hot.bin" not in listing


def test_paths_are_stored_nfc(work: Path, vsync) -> None:
    nfd = unicodedata.normalize("NFD", "café.txt")
    (work / nfd).write_text("x")
    assert porcelain(vsync) == ["?? café.txt"]
    assert porcelain(vsync)[0].encode() == "?? café.txt".encode()
    vsync("commit", "-m", "nfc")
    assert run_vsync("show", "HEAD:café.txt", cwd=work).stdout == "x"


def test_pre_commit_hook_can_refuse(work: Path, vsync) -> None:
    hook = work / ".vsync" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'no commits on fridays' >&2\nexit 1\n")
    hook.chmod(0o755)
    (work / "f").write_text("x")
    out = vsync("commit", "-m", "m", check=False)
    assert out.returncode == 1
    assert "no commits on fridays" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (work / ".vsync/git/refs/heads/main").exists()
    hook.unlink()
    vsync("commit", "-m", "m")


def test_post_commit_hook_runs(work: Path, vsync) -> None:
    hook = work / ".vsync" / "hooks" / "post-commit"
    hook.write_text(f"#!/bin/sh\necho done > '{work.parent / 'marker'}'\n")
    hook.chmod(0o755)
    (work / "f").write_text("x")
    vsync("commit", "-m", "m")
    assert (work.parent / "marker").read_text() == "done\n"


def test_init_installs_sample_hooks_inactive(work: Path) -> None:
    names = os.listdir(work / ".vsync" / "hooks")
    assert "pre-commit.sample" in names
    assert "pre-commit" not in names


def test_outside_repository_is_one_clear_line(tmp_path: Path) -> None:
    for args in (["status"], ["commit", "-m", "x"]):
        out = run_vsync(*args, cwd=tmp_path, check=False)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1
        assert "not a vsync repository" in out.stderr


def test_init_twice_is_refused(work: Path) -> None:
    out = run_vsync("init", cwd=work, check=False)
    assert out.returncode == 2
    assert "already a vsync repository" in out.stderr


def test_bare_repository(tmp_path: Path) -> None:
    bare = tmp_path / "usb" / "repo"
    run_vsync("init", "--bare", bare, cwd=tmp_path)
    assert (bare / "config").is_file() and (bare / "git").is_dir()
    out = run_vsync("status", cwd=bare, check=False)
    assert out.returncode == 2
    assert "bare" in out.stderr


def test_commit_progress_only_on_a_terminal(work: Path, vsync) -> None:
    (work / "f.bin").write_bytes(os.urandom(5 << 20))
    out = vsync("commit", "-m", "quiet when piped")
    assert "\r" not in out.stderr and out.stderr == ""
    (work / "g.bin").write_bytes(os.urandom(5 << 20))
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: stdio on a terminal
        os.chdir(work)
        os.execv(sys.executable, [sys.executable, "-m", "vsync", "commit", "-m", "tty"])
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "Committing:" in text and "/s" in text
    assert re.search(r"files \d+/\d+", text)


def test_nested_git_project_is_an_ordinary_folder(work: Path, vsync) -> None:
    """A synced folder may hold git projects: their .git folders are kept like any other."""
    (work / "proj" / ".git" / "refs").mkdir(parents=True)
    (work / "proj" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (work / "proj" / "main.c").write_text("int main;\n")
    vsync("commit", "-m", "code")
    assert porcelain(vsync) == []
    assert run_vsync("show", "HEAD:proj/.git/HEAD", cwd=work).stdout == "ref: refs/heads/main\n"
