"""``vsync history``: the full-screen browser (through prompt-toolkit's pipe input) and the table.

The browser runs for real on real repositories (made with the real CLI): keys
go in through a pipe, the screen goes to a dummy output, and the tests look at
what it did to the folder (restored bytes, the file saved beside, a refusal)
and at what its preview pane holds.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from tests.conftest import Run, run_vsync
from vsync.model.repository import Repository
from vsync.model.revisions import resolve
from vsync.model.snapshot import commit_tree, lookup
from vsync.ops.versions import load_history
from vsync.ui.history_browser import HistoryBrowser

DOWN, PGDN, ESC = "\x1b[B", "\x1b[6~", "\x1b"
WATCHDOG = 15.0  # seconds: a browser that never quits fails the test instead of hanging


def notes(n: int) -> bytes:
    return f"title\nversion {n}\ncommon line\n\tindented {n}\n".encode()


def photo(seed: int) -> bytes:
    """~300 KiB of pseudo-random bytes with NULs in the first few: binary, several chunks."""
    out = bytearray(b"\x89PNG\x00\x00\x00\x0d")
    x = seed * 2654435761 + 1
    while len(out) < 300 * 1024:
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out += x.to_bytes(8, "little")
    return bytes(out)


BIG = "".join(f"big line {i}\n" for i in range(1, 5001)).encode()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five commits: notes.txt has 4 versions, photo.bin 2; c3 only adds other.txt and big.txt.

    c1 "first notes" (notes 1, photo 1) - c2 "second notes" - c3 "unrelated" -
    c4 "third notes" (notes 3, photo 2) - c5 "fourth notes".
    """
    root = tmp_path_factory.mktemp("history-base") / "work"
    root.mkdir()
    run_vsync("init", cwd=root)
    steps: list[tuple[str, dict[str, bytes]]] = [
        ("first notes", {"notes.txt": notes(1), "photo.bin": photo(1)}),
        ("second notes", {"notes.txt": notes(2)}),
        ("unrelated", {"other.txt": b"other\n", "big.txt": BIG}),
        ("third notes", {"notes.txt": notes(3), "photo.bin": photo(2)}),
        ("fourth notes", {"notes.txt": notes(4)}),
    ]
    for message, files in steps:
        for name, data in files.items():
            (root / name).write_bytes(data)
        run_vsync("commit", "-m", message, cwd=root)
    return root


@pytest.fixture
def work(base: Path, tmp_path: Path) -> Path:
    """A private copy of the base repository (tests change its folder)."""
    root = tmp_path / "work"
    shutil.copytree(base, root, symlinks=True)
    return root


def ids(root: Path) -> list[str]:
    """Commit ids c1..c5."""
    with Repository.open_path(root) as repo:
        return [resolve(repo, f"HEAD~{n}").decode() for n in (4, 3, 2, 1, 0)]


@contextmanager
def browsed(
    root: Path, path: str, keys: str, inline_hash_limit: int | None = None
) -> Iterator[HistoryBrowser]:
    """Run the browser on ``path`` with ``keys`` typed; yields it after it has quit."""
    with Repository.open_path(root) as repo, create_pipe_input() as inp:
        browser = HistoryBrowser(repo, load_history(repo, path), input=inp, output=DummyOutput())
        if inline_hash_limit is not None:
            browser.inline_hash_limit = inline_hash_limit
        inp.send_text(keys)
        watchdog = threading.Timer(WATCHDOG, inp.close)  # closed input: EOFError, not a hang
        watchdog.start()
        try:
            browser.run()
        finally:
            watchdog.cancel()
        yield browser


def styled(browser: HistoryBrowser, style: str) -> list[str]:
    return [f[1] for f in browser._preview_fragments() if f[0] == style]


# -- the list and the content preview -------------------------------------------------------


def test_lists_versions_newest_first_and_previews_numbered_text(work: Path) -> None:
    c = ids(work)
    with browsed(work, "notes.txt", "q") as b:
        assert [v.commit_id.decode() for v in b.history.versions] == [c[4], c[3], c[1], c[0]]
        rows = b._list_fragments()
        assert [f[1].split()[-2:] for f in rows] == [
            ["fourth", "notes"],
            ["third", "notes"],
            ["second", "notes"],
            ["first", "notes"],
        ]
        assert rows[0][0] == "class:selected" and rows[0][1].startswith("> ")
        assert "testhost" in rows[0][1] and f"{len(notes(4))} B" in rows[0][1]
        text = b.preview_text()
        assert f"notes.txt at {c[4][:10]}" in text
        assert " 2 │ version 4\n" in text
        assert " 4 │ " + " " * 8 + "indented 4\n" in text  # tabs expanded, never ^I
        assert "version 3" not in text
    with browsed(work, "notes.txt", "j" + DOWN + "kq") as b:
        assert b.index == 1
        assert f"notes.txt at {c[3][:10]}" in b.preview_text()
        assert " 2 │ version 3\n" in b.preview_text()
    with browsed(work, "notes.txt", "G" + "q") as b:
        assert b.index == 3 and " 2 │ version 1\n" in b.preview_text()


def test_text_preview_is_bounded_and_scrolls(work: Path) -> None:
    with browsed(work, "big.txt", "q") as b:
        text = b.preview_text()
        assert "2000 │ big line 2000\n" in text
        assert "big line 2001" not in text
        assert "only the first 2000 lines are shown" in text
        assert b.preview_top == 0
    with browsed(work, "big.txt", PGDN + " q") as b:
        two_pages = b.preview_top
        assert two_pages > 30  # the dummy screen is 40 rows
    with browsed(work, "big.txt", PGDN + " " + "\x1b[5~q") as b:
        assert 0 < b.preview_top < two_pages


def test_binary_preview_shows_size_chunks_blake3_and_manifest(work: Path) -> None:
    c = ids(work)
    with Repository.open_path(work) as repo:
        db = repo.gitdb
        _mode, oid = lookup(db, commit_tree(db, c[3].encode()), "photo.bin")
        manifest = db.manifest(oid)
    assert len(manifest.chunks) > 1
    with browsed(work, "photo.bin", "q") as b:
        text = b.preview_text()
        assert "binary file" in text
        assert f"size      {len(photo(2))} bytes" in text
        assert f"chunks    {len(manifest.chunks)}\n" in text
        assert f"BLAKE3    {blake3.blake3(photo(2)).hexdigest()}\n" in text
        assert f"manifest  {oid.decode()}\n" in text
        assert oid.decode() != blake3.blake3(photo(2)).hexdigest()[:40]
        assert " 1 │" not in text
        # only the selected version was hashed
        assert list(b.hashes.values()) == [blake3.blake3(photo(2)).hexdigest()]
    with browsed(work, "photo.bin", "jq") as b:
        assert f"BLAKE3    {blake3.blake3(photo(1)).hexdigest()}\n" in b.preview_text()


def test_large_versions_are_hashed_in_the_background(work: Path) -> None:
    """Over the inline limit the BLAKE3 comes from a worker thread while the browser runs."""
    want = blake3.blake3(photo(1)).hexdigest()
    with Repository.open_path(work) as repo, create_pipe_input() as inp:
        b = HistoryBrowser(repo, load_history(repo, "photo.bin"), input=inp, output=DummyOutput())
        b.inline_hash_limit = 0

        def then_quit() -> None:  # the person waits for the hash to show up, then quits
            deadline = time.monotonic() + WATCHDOG
            while want not in b.hashes.values() and time.monotonic() < deadline:
                time.sleep(0.01)
            inp.send_text("q")

        inp.send_text("j")
        quitter = threading.Thread(target=then_quit)
        quitter.start()
        b.run()
        quitter.join()
        assert f"BLAKE3    {want}\n" in b.preview_text()
        assert not b._threads  # every worker has finished
    with browsed(work, "photo.bin", "jq", inline_hash_limit=0) as b:
        text = b.preview_text()  # quit at once: the hash was cancelled, or had just finished
        assert "computing…" not in text  # and nothing more starts after quitting
        assert "BLAKE3    (not computed)\n" in text or f"BLAKE3    {want}\n" in text
        assert not b._threads


# -- diffs ------------------------------------------------------------------------------------


def test_d_diffs_the_selected_version_against_the_file_in_the_folder(work: Path) -> None:
    c = ids(work)
    (work / "notes.txt").write_bytes(notes(4) + b"an uncommitted line\n")
    with browsed(work, "notes.txt", "jdq") as b:
        assert b.view == "current"
        text = b.preview_text()
        assert f"notes.txt: {c[3][:10]} -> the folder now" in text
        assert "-version 3\n" in styled(b, "class:del")
        assert "+version 4\n" in styled(b, "class:add")
        assert "+an uncommitted line\n" in styled(b, "class:add")
        assert any(t.startswith("@@ ") for t in styled(b, "class:hunk"))
    (work / "notes.txt").write_bytes(notes(3))
    with browsed(work, "notes.txt", "jdq") as b:
        assert "no difference: the folder holds this version" in b.preview_text()
        (work / "notes.txt").write_bytes(notes(3) + b"edited while browsing\n")
        assert "no difference" in b.preview_text()  # until d is pressed again
        b.show("current")
        assert "+edited while browsing\n" in styled(b, "class:add")
    with browsed(work, "notes.txt", "jdvq") as b:  # v goes back to the content
        assert b.view == "content" and " 2 │ version 3\n" in b.preview_text()


def test_p_diffs_against_the_previous_version(work: Path) -> None:
    c = ids(work)
    with browsed(work, "notes.txt", "jpq") as b:
        text = b.preview_text()
        assert f"notes.txt: {c[1][:10]} -> {c[3][:10]}" in text  # c2 -> c4: c3 is not a version
        assert "-version 2\n" in styled(b, "class:del")
        assert "+version 3\n" in styled(b, "class:add")
        assert "-version 4\n" not in styled(b, "class:del")
    with browsed(work, "notes.txt", "Gpq") as b:  # the first version: from nothing
        assert "(new file)" in b.preview_text()
        assert "+version 1\n" in styled(b, "class:add")
    with browsed(work, "photo.bin", "pq") as b:
        assert f"binary: {len(photo(1))} bytes" in b.preview_text()


# -- restore and save beside ------------------------------------------------------------------


def test_r_restores_the_selected_version_in_place(work: Path) -> None:
    c = ids(work)
    with browsed(work, "notes.txt", "jjrq") as b:
        assert b.status[1].startswith(f"restored notes.txt as of {c[1][:10]}")
        assert (work / "notes.txt").read_bytes() == notes(2)
    with browsed(work, "photo.bin", "jrq") as b:
        assert (work / "photo.bin").read_bytes() == photo(1)
        assert b.status[0] == "class:ok"
    with browsed(work, "notes.txt", "jjrq") as b:
        assert "already is the version" in b.status[1]
        assert (work / "notes.txt").read_bytes() == notes(2)
    status = run_vsync("status", "--porcelain", cwd=work).stdout
    assert "notes.txt" in status and "photo.bin" in status


def test_r_refuses_to_overwrite_uncommitted_edits_and_the_browser_goes_on(work: Path) -> None:
    edited = notes(4) + b"precious unsaved work\n"
    (work / "notes.txt").write_bytes(edited)
    with browsed(work, "notes.txt", "jrjq") as b:
        style, text = b.status
        assert style == "class:error"
        assert text.startswith("error: uncommitted changes would be overwritten: 'notes.txt'")
        assert "press s to save this version beside it" in text
        assert b.index == 2  # the key after the refusal was still handled
    assert (work / "notes.txt").read_bytes() == edited


def test_s_saves_the_selected_version_beside_under_a_new_name(work: Path) -> None:
    c = ids(work)
    beside = work / f"notes.{c[1][:10]}.txt"
    with browsed(work, "notes.txt", "jjsq") as b:
        assert b.status == (
            "class:ok",
            f"saved {c[1][:10]}'s version of notes.txt as {beside.name}",
        )
    assert beside.read_bytes() == notes(2)
    assert (work / "notes.txt").read_bytes() == notes(4)
    assert not [p for p in os.listdir(work) if p.startswith(".vsync-tmp-")]
    beside.write_bytes(b"mine now\n")
    with browsed(work, "notes.txt", "jjsq") as b:  # never over an existing file
        assert b.status[0] == "class:error"
        assert f"'{beside.name}' already exists; nothing was written" in b.status[1]
    assert beside.read_bytes() == b"mine now\n"
    with browsed(work, "photo.bin", "jsq") as b:
        assert (work / f"photo.{c[0][:10]}.bin").read_bytes() == photo(1)


# -- the whole folder ---------------------------------------------------------------------------


def test_no_path_browses_commits_and_what_each_changed(work: Path) -> None:
    c = ids(work)
    with browsed(work, "", "q") as b:
        assert b.folder and [x.commit_id.decode() for x in b.history.commits] == c[::-1]
        rows = [f[1] for f in b._list_fragments()]
        assert "1 path" in rows[0] and "fourth notes" in rows[0]
        assert "2 paths" in rows[2] and "unrelated" in rows[2]
        assert "  M  notes.txt\n" in b.preview_text()
    with browsed(work, "", "jjq") as b:
        text = b.preview_text()
        assert f"commit {c[2][:10]}" in text
        assert "  A  big.txt\n" in text and "  A  other.txt\n" in text
        assert ("class:letter-a", "  A") in b._preview_fragments()
    with browsed(work, "", "jjpq") as b:
        assert f"what {c[2][:10]} changed" in b.preview_text()
        assert "+other\n" in styled(b, "class:add")  # after big.txt, cut to its first lines
        assert "… 4501 more lines of this diff\n" in styled(b, "class:note")
    (work / "other.txt").write_bytes(b"changed since\n")
    with browsed(work, "", "dq") as b:
        assert "-other\n" in styled(b, "class:del") and "+changed since\n" in styled(b, "class:add")
    with browsed(work, "", "jjrsq") as b:
        assert "vsync history PATH" in b.status[1]  # s, the last key
    with browsed(work, "", "jjrq") as b:
        assert f"'vsync checkout {c[2][:10]}'" in b.status[1]
    assert (work / "other.txt").read_bytes() == b"changed since\n"
    assert (work / "notes.txt").read_bytes() == notes(4)


# -- help and quitting ------------------------------------------------------------------------


def test_help_overlay_and_the_ways_out(work: Path) -> None:
    with browsed(work, "notes.txt", "?q") as b:
        assert b.help_visible  # q quits even with the help open
    with browsed(work, "notes.txt", "?jq") as b:
        assert not b.help_visible and b.index == 0  # any key closes the help, and only that
    with browsed(work, "notes.txt", "j" + ESC) as b:  # a lone Esc quits
        assert b.index == 1
    with browsed(work, "notes.txt", "j\x03") as b:  # Ctrl-C quits too
        assert b.index == 1


# -- not a terminal: the table -----------------------------------------------------------------

ROW = re.compile(r"^([0-9a-f]{10})  (\d{4}-\d\d-\d\d \d\d:\d\d)  (\S+)  (.+?)  (.+)$")


def rows(run: Run) -> list[tuple[str, ...]]:
    assert run.returncode == 0, run
    out = []
    for line in run.stdout.splitlines():
        m = ROW.match(line)
        assert m, line
        out.append(m.groups())
    return out


def test_not_a_terminal_prints_a_table(work: Path) -> None:
    c = ids(work)
    got = rows(run_vsync("history", "notes.txt", cwd=work))
    assert [(r[0], r[2], r[3], r[4]) for r in got] == [
        (c[4][:10], "testhost", f"{len(notes(4))} B", "fourth notes"),
        (c[3][:10], "testhost", f"{len(notes(3))} B", "third notes"),
        (c[1][:10], "testhost", f"{len(notes(2))} B", "second notes"),
        (c[0][:10], "testhost", f"{len(notes(1))} B", "first notes"),
    ]
    assert [r[3] for r in rows(run_vsync("history", "photo.bin", cwd=work))] == ["300.0 KiB"] * 2
    folder = rows(run_vsync("history", cwd=work))
    assert [(r[0], r[3]) for r in folder] == [
        (c[4][:10], "1 path"),
        (c[3][:10], "2 paths"),
        (c[2][:10], "2 paths"),
        (c[1][:10], "1 path"),
        (c[0][:10], "2 paths"),
    ]


def test_table_errors_and_empty_repositories(work: Path, tmp_path: Path) -> None:
    run = run_vsync("history", "nope.txt", cwd=work, check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip() == (
        "vsync: error: 'nope.txt' is not in any commit, so it has no versions "
        "('vsync status' shows what is not committed yet)"
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    run = run_vsync("history", cwd=outside, check=False)
    assert run.returncode == 2 and "not a vsync repository" in run.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    run_vsync("init", cwd=empty)
    run = run_vsync("history", cwd=empty)
    assert run.stdout == "" and run.stderr == "vsync: no commits yet\n"
    run = run_vsync("history", "a.txt", cwd=empty, check=False)
    assert run.returncode == 2 and "'a.txt' is not in any commit" in run.stderr
    (empty / "sub").mkdir()
    (empty / "sub" / "a.txt").write_bytes(b"a\n")
    (empty / "top.txt").write_bytes(b"top\n")
    run_vsync("commit", "-m", "a folder", cwd=empty)
    got = rows(run_vsync("history", ".", cwd=empty / "sub"))  # a folder, relative to cwd
    assert [(r[3], r[4]) for r in got] == [("1 path", "a folder")]
