"""``vsync log``, ``vsync diff`` and ``vsync show`` through the real CLI."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run, run_vsync
from vsync.model.gitdb import RawObject, commit_object
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import commit_tree, lookup
from vsync.ops.commit import move_branch
from vsync.store.chunkpack import HEADER, RECORD

HEX40 = re.compile(r"^[0-9a-f]{40}$")
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"

Vsync = Callable[..., Run]


def commit_id(root: Path, rev: str = "HEAD") -> str:
    with Repository.open_path(root) as repo:
        return resolve(repo, rev).decode()


def assert_one_line_error(run: Run, code: int, text: str) -> None:
    assert run.returncode == code, run
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("vsync: error: ")
    assert text in lines[0]
    assert "Traceback" not in run.stderr


# -- a shared, read-only history -------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Four commits: c1 adds a.txt and sub/b.txt, c2 edits a.txt, c3 edits sub/b.txt,
    c4 deletes a.txt and turns sub/b.txt's neighbour into a symlink."""
    root = tmp_path_factory.mktemp("history") / "work"
    root.mkdir()

    def v(*args: str, **kw: object) -> Run:
        return run_vsync(*args, cwd=root, **kw)  # type: ignore[arg-type]

    v("init")
    (root / "a.txt").write_text("alpha\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("beta\n")
    (root / "sub" / "c.txt").write_text("gamma\n")
    v("commit", "-m", "first commit\n\nwith a body\nof two lines")
    (root / "a.txt").write_text("alpha 2\n")
    v("commit", "-m", "edit a")
    (root / "sub" / "b.txt").write_text("beta 2\n")
    v("commit", "-m", "edit b")
    (root / "a.txt").unlink()
    (root / "sub" / "c.txt").unlink()
    (root / "sub" / "c.txt").symlink_to("b.txt")
    v("commit", "-m", "remove a, c becomes a link")
    ids = [commit_id(root, f"HEAD~{n}") for n in (3, 2, 1, 0)]
    return {"root": root, "ids": ids, "v": v}


def test_log_default_format(history: dict[str, object]) -> None:
    root, ids = history["root"], history["ids"]
    assert isinstance(root, Path) and isinstance(ids, list)
    out = run_vsync("log", cwd=root).stdout
    blocks = out.split("\n\ncommit ")
    assert len(blocks) == 4
    first = out.splitlines()[:7]
    assert first[0] == f"commit {ids[3]}"
    assert first[1] == "Author: Test Author <test@example.com>"
    assert first[2] == "Host: testhost"
    assert re.fullmatch(rf"Date:   {DATE}", first[3])
    assert first[4:6] == ["", "    remove a, c becomes a link"]
    # the root commit comes last; its message body is indented, its blank line kept
    last = out.split("\n\ncommit ")[-1].splitlines()
    assert last[0] == ids[0]
    assert re.fullmatch(rf"Date:   {DATE}", last[3])
    assert last[4:] == ["", "    first commit", "", "    with a body", "    of two lines"]
    assert out.endswith("    of two lines\n")
    order = re.findall(r"^commit ([0-9a-f]{40})$", out, re.M)
    assert order == list(reversed(ids))


def test_log_oneline_and_limit(history: dict[str, object]) -> None:
    root, ids = history["root"], history["ids"]
    assert isinstance(root, Path) and isinstance(ids, list)
    out = run_vsync("log", "--oneline", cwd=root).stdout
    assert out == (
        f"{ids[3][:10]} remove a, c becomes a link\n"
        f"{ids[2][:10]} edit b\n"
        f"{ids[1][:10]} edit a\n"
        f"{ids[0][:10]} first commit\n"
    )
    assert run_vsync("log", "--oneline", "-n", "2", cwd=root).stdout == "".join(
        out.splitlines(keepends=True)[:2]
    )
    assert run_vsync("log", "-n", "0", cwd=root).stdout == ""
    assert run_vsync("log", "--oneline", "--rev", "HEAD~2", cwd=root).stdout == "".join(
        out.splitlines(keepends=True)[2:]
    )
    bad = run_vsync("log", "-n", "-1", cwd=root, check=False)
    assert_one_line_error(bad, 2, "-n")


def test_log_path_filter(history: dict[str, object]) -> None:
    root, ids = history["root"], history["ids"]
    assert isinstance(root, Path) and isinstance(ids, list)

    def shorts(*args: str, cwd: Path = root) -> list[str]:
        out = run_vsync("log", "--oneline", *args, cwd=cwd).stdout
        return [line.split()[0] for line in out.splitlines()]

    s = [i[:10] for i in ids]
    assert shorts("a.txt") == [s[3], s[1], s[0]]  # deleted, edited, added
    assert shorts("sub") == [s[3], s[2], s[0]]
    assert shorts("sub/b.txt") == [s[2], s[0]]
    assert shorts("sub/b.txt", "a.txt") == [s[3], s[2], s[1], s[0]]
    assert shorts("--rev", "HEAD~1", "a.txt") == [s[1], s[0]]
    assert shorts("nothing-here") == []
    # relative to the current directory
    assert shorts("b.txt", cwd=root / "sub") == [s[2], s[0]]
    assert shorts(".", cwd=root / "sub") == [s[3], s[2], s[0]]
    outside = run_vsync("log", "../../elsewhere", cwd=root / "sub", check=False)
    assert_one_line_error(outside, 2, "outside the working folder")


def test_show_commit_lists_changes_with_status_letters(history: dict[str, object]) -> None:
    root, ids = history["root"], history["ids"]
    assert isinstance(root, Path) and isinstance(ids, list)
    out = run_vsync("show", cwd=root).stdout
    head, changes = out.split("\n\n    remove a, c becomes a link\n\n")
    assert head.splitlines()[0] == f"commit {ids[3]}"
    assert changes == "D\ta.txt\nT\tsub/c.txt\n"
    root_commit = run_vsync("show", ids[0][:8], cwd=root).stdout
    assert root_commit.endswith("\n\nA\ta.txt\nA\tsub/b.txt\nA\tsub/c.txt\n")
    assert run_vsync("show", "HEAD~1", cwd=root).stdout.endswith("    edit b\n\nM\tsub/b.txt\n")


def test_show_path_versions_symlink_and_folder(history: dict[str, object]) -> None:
    root = history["root"]
    assert isinstance(root, Path)

    def show(spec: str, cwd: Path = root) -> bytes:
        return run_vsync("show", spec, cwd=cwd).stdout_bytes

    assert show("HEAD~3:a.txt") == b"alpha\n"
    assert show("HEAD:sub/b.txt") == b"beta 2\n"
    assert show(":sub/b.txt") == b"beta 2\n"  # an empty REV is HEAD
    assert show("HEAD~3:sub/b.txt", cwd=root / "sub") == b"beta\n"  # from the root, as git
    assert show("HEAD~3:a.txt", cwd=root / "sub") == b"alpha\n"
    assert show("HEAD~3:./b.txt", cwd=root / "sub") == b"beta\n"  # './': from the cwd
    assert show("HEAD~3:../a.txt", cwd=root / "sub") == b"alpha\n"
    assert show("HEAD~3:/a.txt", cwd=root / "sub") == b"alpha\n"  # '/' is the root
    assert show("HEAD:sub/c.txt") == b"b.txt\n"  # a symlink prints its target
    assert show("HEAD~3:sub/c.txt") == b"gamma\n"
    assert show("HEAD~3:") == b"a.txt\nsub/\n"
    assert show("HEAD:sub") == b"b.txt\nc.txt\n"
    assert show("HEAD:.", cwd=root / "sub") == b"b.txt\nc.txt\n"
    assert show("HEAD:", cwd=root / "sub") == b"sub/\n"


def test_show_errors_are_one_line_with_exit_2(history: dict[str, object], tmp_path: Path) -> None:
    root = history["root"]
    assert isinstance(root, Path)
    r = run_vsync("show", "nosuchrev:a.txt", cwd=root, check=False)
    assert_one_line_error(r, 2, "unknown revision 'nosuchrev'")
    r = run_vsync("show", "HEAD~9", cwd=root, check=False)
    assert_one_line_error(r, 2, "unknown revision 'HEAD~9'")
    r = run_vsync("show", "HEAD~1:nope.txt", cwd=root, check=False)
    assert_one_line_error(r, 2, "path 'nope.txt' does not exist in revision HEAD~1")
    r = run_vsync("show", "HEAD:a.txt", cwd=root, check=False)  # deleted in HEAD
    assert_one_line_error(r, 2, "path 'a.txt' does not exist in revision HEAD")
    r = run_vsync("show", "HEAD:a.txt/deeper", cwd=root, check=False)
    assert_one_line_error(r, 2, "does not exist in revision HEAD")
    r = run_vsync("show", "HEAD~3:b.txt", cwd=root / "sub", check=False)  # from the root
    assert_one_line_error(r, 2, "path 'b.txt' does not exist in revision HEAD~3")
    r = run_vsync("show", "HEAD:../../x", cwd=root / "sub", check=False)
    assert_one_line_error(r, 2, "is outside the working folder")
    r = run_vsync("show", "HEAD:../x", cwd=root, check=False)
    assert_one_line_error(r, 2, "is outside the working folder")
    r = run_vsync("show", "HEAD:./.vsync/config", cwd=root, check=False)
    assert_one_line_error(r, 2, "inside vsync's own .vsync folder")
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    for args in (("show", "HEAD:a.txt"), ("diff",)):
        r = run_vsync(*args, cwd=elsewhere, check=False)
        assert_one_line_error(r, 2, "not a vsync repository")


def test_log_show_diff_with_no_commits(work: Path, vsync: Vsync) -> None:
    r = vsync("log")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "vsync: no commits yet\n")
    assert_one_line_error(vsync("show", check=False), 2, "no commits yet")
    (work / "new.txt").write_text("hello\n")
    assert vsync("diff").stdout == (
        "diff --vsync a/new.txt b/new.txt\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/new.txt\n"
        "@@ -0,0 +1 @@\n"
        "+hello\n"
    )


# -- merges ----------------------------------------------------------------------------


def test_log_follows_both_parents_of_a_merge(work: Path, vsync: Vsync) -> None:
    (work / "a.txt").write_text("one\n")
    vsync("commit", "-m", "base")
    (work / "a.txt").write_text("two\n")
    vsync("commit", "-m", "ours")
    with Repository.open_path(work) as repo:
        db = repo.gitdb
        head = repo.head()
        assert head is not None
        ours = db.commit(head)
        base = ours.parents[0]

        def make(parents: list[bytes], message: bytes, when: int) -> RawObject:
            c = commit_object(
                tree=ours.tree,
                parents=parents,
                author=b"Other <other@example.com>",
                time=when,
                timezone=3600,
                message=message,
            )
            db.add([c])
            return c

        theirs = make([base], b"theirs\n", ours.commit_time + 1)
        merge = make([head, theirs.id], b"merge theirs\n", ours.commit_time + 2)
        move_branch(repo, head, merge.id, "test: a merge made elsewhere")
    out = vsync("log", "--oneline").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == ["merge theirs", "theirs", "ours", "base"]
    assert out[0].startswith(merge.id.decode()[:10])
    shown = vsync("show").stdout.splitlines()
    assert shown[1] == f"Merge: {head.decode()[:10]} {theirs.id.decode()[:10]}"
    assert shown[2] == "Author: Other <other@example.com>"
    assert re.fullmatch(r"Date:   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0100", shown[3])  # no Host
    # the merge's tree equals its first parent's: not listed for a.txt; 'theirs' is
    assert [
        line.split(" ", 1)[1] for line in vsync("log", "--oneline", "a.txt").stdout.splitlines()
    ] == [
        "theirs",
        "ours",
        "base",
    ]


# -- diff ------------------------------------------------------------------------------


TEN = "".join(f"line {i}\n" for i in range(1, 11))


def test_diff_text_hunks_against_head_and_between_revisions(work: Path, vsync: Vsync) -> None:
    (work / "t.txt").write_text(TEN)
    vsync("commit", "-m", "ten lines")
    (work / "t.txt").write_text(TEN.replace("line 5\n", "line five\n") + "line 11")
    expected = (
        "diff --vsync a/t.txt b/t.txt\n"
        "--- a/t.txt\n"
        "+++ b/t.txt\n"
        "@@ -2,9 +2,10 @@\n"
        " line 2\n"
        " line 3\n"
        " line 4\n"
        "-line 5\n"
        "+line five\n"
        " line 6\n"
        " line 7\n"
        " line 8\n"
        " line 9\n"
        " line 10\n"
        "+line 11\n"
        "\\ No newline at end of file\n"
    )
    assert vsync("diff").stdout == expected
    vsync("commit", "-m", "edit")
    assert vsync("diff").stdout == ""
    assert vsync("diff", "HEAD~1", "HEAD").stdout == expected
    assert vsync("diff", "HEAD~1").stdout == expected  # REV vs the working folder
    # two separate hunks when the changes are far apart
    lines = [f"l{i}\n" for i in range(1, 21)]
    (work / "t.txt").write_text("".join(lines))
    vsync("commit", "-m", "twenty")
    lines[1], lines[18] = "L2\n", "L19\n"
    (work / "t.txt").write_text("".join(lines))
    hunks = [ln for ln in vsync("diff").stdout.splitlines() if ln.startswith("@@")]
    assert hunks == ["@@ -1,5 +1,5 @@", "@@ -16,5 +16,5 @@"]


def test_diff_added_deleted_and_path_filter(work: Path, vsync: Vsync) -> None:
    (work / "gone.txt").write_text("bye\n")
    (work / "keep").mkdir()
    (work / "keep" / "k.txt").write_text("k\n")
    vsync("commit", "-m", "base")
    (work / "gone.txt").unlink()
    (work / "keep" / "k.txt").write_text("k2\n")
    (work / "new.txt").write_text("")  # empty: header only
    deleted = (
        "diff --vsync a/gone.txt b/gone.txt\n"
        "deleted file mode 100644\n"
        "--- a/gone.txt\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-bye\n"
    )
    modified = (
        "diff --vsync a/keep/k.txt b/keep/k.txt\n"
        "--- a/keep/k.txt\n"
        "+++ b/keep/k.txt\n"
        "@@ -1 +1 @@\n"
        "-k\n"
        "+k2\n"
    )
    added = "diff --vsync a/new.txt b/new.txt\nnew file mode 100644\n"
    assert vsync("diff").stdout == deleted + modified + added
    assert vsync("diff", "--", "keep").stdout == modified
    assert vsync("diff", "HEAD", "--", "gone.txt", "new.txt").stdout == deleted + added
    assert vsync("diff", "keep").stdout == modified  # an existing path needs no '--'
    assert vsync("diff", "k.txt", cwd=work / "keep").stdout == modified  # cwd-relative
    vsync("commit", "-m", "change")
    assert vsync("diff", "HEAD~1", "HEAD", "--", "gone.txt").stdout == deleted
    assert vsync("diff", "HEAD~1", "HEAD").stdout == deleted + modified + added


def test_diff_binary_summary_mode_change_and_symlink(work: Path, vsync: Vsync) -> None:
    blob = bytes(range(256)) * 80  # 20480 bytes with NUL bytes: binary
    (work / "b.bin").write_bytes(blob)
    (work / "run.sh").write_text("echo hi\n")
    (work / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (work / "link").symlink_to("run.sh")
    vsync("commit", "-m", "base")
    (work / "b.bin").write_bytes(blob + b"\x00")
    os.chmod(work / "run.sh", 0o755)
    (work / "latin1.txt").write_bytes("caf\u00e9s\n".encode("latin-1"))
    (work / "link").unlink()
    (work / "link").symlink_to("b.bin")
    out = vsync("diff").stdout
    m = re.fullmatch(
        r"Binary b\.bin: 20480 bytes \(20\.0 KiB, manifest ([0-9a-f]{10})\) -> "
        r"20481 bytes \(20\.0 KiB, manifest ([0-9a-f]{10})\)\n"
        r"Binary latin1\.txt: 5 bytes \(5 B, manifest [0-9a-f]{10}\) -> "
        r"6 bytes \(6 B, manifest [0-9a-f]{10}\)\n"
        r"diff --vsync a/link b/link\n"
        r"--- a/link\n"
        r"\+\+\+ b/link\n"
        r"@@ -1 \+1 @@\n"
        r"-run\.sh\n"
        r"\\ No newline at end of file\n"
        r"\+b\.bin\n"
        r"\\ No newline at end of file\n"
        r"mode change 100644 => 100755 run\.sh\n",
        out,
    )
    assert m, out
    assert m.group(1) != m.group(2)
    with Repository.open_path(work) as repo:
        head = repo.head()
        assert head is not None
        store = repo.gitdb
        _mode, old_id = lookup(store, commit_tree(store, head), "b.bin")
    assert old_id.decode()[:10] == m.group(1)
    vsync("commit", "-m", "change all")
    # the working folder's ids are the ones a commit records
    assert vsync("diff", "HEAD~1", "HEAD").stdout == out
    assert vsync("diff", "HEAD", "HEAD~1", "--", "run.sh").stdout == (
        "mode change 100755 => 100644 run.sh\n"
    )


def test_diff_type_change_and_exec_bit_with_content(work: Path, vsync: Vsync) -> None:
    (work / "x").write_text("file\n")
    (work / "s.sh").write_text("a\n")
    vsync("commit", "-m", "base")
    (work / "x").unlink()
    (work / "x").symlink_to("target")
    (work / "s.sh").write_text("b\n")
    os.chmod(work / "s.sh", 0o755)
    assert vsync("diff").stdout == (
        "diff --vsync a/s.sh b/s.sh\n"
        "old mode 100644\n"
        "new mode 100755\n"
        "--- a/s.sh\n"
        "+++ b/s.sh\n"
        "@@ -1 +1 @@\n"
        "-a\n"
        "+b\n"
        "diff --vsync a/x b/x\n"
        "deleted file mode 100644\n"
        "--- a/x\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-file\n"
        "diff --vsync a/x b/x\n"
        "new file mode 120000\n"
        "--- /dev/null\n"
        "+++ b/x\n"
        "@@ -0,0 +1 @@\n"
        "+target\n"
        "\\ No newline at end of file\n"
    )


def test_diff_argument_errors(work: Path, vsync: Vsync) -> None:
    (work / "a.txt").write_text("a\n")
    vsync("commit", "-m", "one")
    r = vsync("diff", "nosuch", check=False)
    assert_one_line_error(r, 2, "unknown revision 'nosuch'")
    r = vsync("diff", "HEAD", "HEAD", "HEAD", "--", "a.txt", check=False)
    assert_one_line_error(r, 2, "at most two revisions")
    r = vsync("diff", "HEAD", "--bogus", check=False)
    assert_one_line_error(r, 2, "unknown option '--bogus'")
    (work / "main").write_text("a file named like the branch\n")
    r = vsync("diff", "main", check=False)
    assert_one_line_error(r, 2, "both a revision and a file")
    assert vsync("diff", "--", "main").stdout.startswith("diff --vsync a/main b/main\n")
    assert vsync("diff", "main", "--").stdout.startswith("diff --vsync a/main b/main\n")


# -- show: bytes -----------------------------------------------------------------------


def test_show_streams_exact_bytes_of_a_multi_chunk_file(work: Path, vsync: Vsync) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (work / "big.bin").write_bytes(data)
    (work / "small.txt").write_bytes(b"no newline at end")
    vsync("commit", "-m", "big")
    with Repository.open_path(work) as repo:
        store = repo.gitdb
        head = repo.head()
        assert head is not None
        _mode, oid = lookup(store, commit_tree(store, head), "big.bin")
        assert len(store.manifest(oid).chunks) > 5
    (work / "big.bin").write_bytes(b"replaced")
    vsync("commit", "-m", "replace")
    assert vsync("show", "HEAD~1:big.bin").stdout_bytes == data
    assert vsync("show", "HEAD:big.bin").stdout_bytes == b"replaced"
    assert vsync("show", "HEAD:small.txt").stdout_bytes == b"no newline at end"


def _pack_records(pack: Path) -> list[tuple[int, int, bytes]]:
    """(payload offset, stored length, chunk id) of every record in a pack, in order."""
    out = []
    raw = pack.read_bytes()
    pos = HEADER.size
    while raw[pos : pos + 4] == b"CHNK":
        _magic, _comp, _raw_len, stored, cid = RECORD.unpack_from(raw, pos)
        out.append((pos + RECORD.size, stored, cid))
        pos += RECORD.size + stored
    return out


def test_show_stops_at_a_damaged_chunk_after_only_good_bytes(work: Path, vsync: Vsync) -> None:
    data = os.urandom(1024 * 1024)
    (work / "big.bin").write_bytes(data)
    (work / "notes.txt").write_text("".join(f"note {i}\n" for i in range(2000)))
    vsync("commit", "-m", "big")
    with Repository.open_path(work) as repo:
        store = repo.gitdb
        head = repo.head()
        assert head is not None
        _mode, oid = lookup(store, commit_tree(store, head), "big.bin")
        chunks = store.manifest(oid).chunks
        _mode, notes = lookup(store, commit_tree(store, head), "notes.txt")
        notes_chunk = store.manifest(notes).chunks[0][0]
    assert len(chunks) >= 3
    (pack,) = (work / ".vsync" / "chunks").glob("pack-*.vpk")
    records = {cid: (off, stored) for off, stored, cid in _pack_records(pack)}
    for cid in (chunks[2][0], notes_chunk):  # damage big.bin's third chunk, and notes.txt
        off, stored = records[cid]
        with open(pack, "r+b") as f:
            f.seek(off + stored // 2)
            byte = f.read(1)
            f.seek(off + stored // 2)
            f.write(struct.pack("B", byte[0] ^ 0xFF))
    r = vsync("show", "HEAD:big.bin", check=False)
    assert r.returncode == 3
    good = chunks[0][1] + chunks[1][1]
    assert r.stdout_bytes == data[:good]
    assert r.stderr.count("\n") == 1 and "damaged" in r.stderr and "Traceback" not in r.stderr
    # diff reads committed text through the same verified path
    (work / "notes.txt").write_text("changed\n")
    r = vsync("diff", "--", "notes.txt", check=False)
    assert r.returncode == 3 and r.stdout == ""
    assert "damaged" in r.stderr and "Traceback" not in r.stderr


def test_output_is_utf8_whatever_the_locale(work: Path, vsync: Vsync) -> None:
    (work / "caf\u00e9.txt").write_text("\u20ac 5\n", encoding="utf-8")
    ascii_env = {"PYTHONIOENCODING": "ascii", "VSYNC_AUTHOR_NAME": "Ren\u00e9e"}
    r = vsync("diff", env=ascii_env)
    assert r.stdout_bytes.endswith("+++ b/caf\u00e9.txt\n@@ -0,0 +1 @@\n+\u20ac 5\n".encode())
    vsync("commit", "-m", "\u00fcber", env={"VSYNC_AUTHOR_NAME": "Ren\u00e9e"})
    log = vsync("log", env=ascii_env).stdout_bytes.decode("utf-8")
    assert "Author: Ren\u00e9e <test@example.com>\n" in log and "    \u00fcber\n" in log
    assert vsync("show", "HEAD:", env=ascii_env).stdout_bytes == "caf\u00e9.txt\n".encode()
