"""Names, messages and a peer's words never reach the terminal raw (real CLI runs).

A file named ``"\\x1b]0;pwned\\x07"``, a commit message holding ``"\\x1b[2J"`` or
a peer's error holding ``"\\r"`` would rewrite the user's terminal; a name
holding U+202E would pass for another. Every command that shows them is run
on such a repository, and neither its stdout nor its stderr may hold a raw
control character (newline and tab apart), a C1 control or a bidi control.
Paths are quoted as git quotes them (``core.quotePath``), messages escaped.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
from conftest import Run, run_vsync
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.plain_text import PlainTextOutput

from vsync.ui.escape import escape_text, one_line, quote_path

HOSTILE_SERVE = Path(__file__).resolve().parent / "hostile_error_serve.py"

# what may never be printed raw: C0 but \t \n, DEL, C1 (UTF-8 C2 80-9F), the bidi controls
RAW = re.compile(
    rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]"
)

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CR = "a\rb.txt"
BIDI = "report\u202etxt.exe"  # shows as "reportexe.txt"
C1 = "c1\u009bname"  # U+009B is CSI
NEWLINE = "two\nlines"
QUOTE = 'say "hi"\tnow'
NAMES = [TITLE, CR, BIDI, C1, NEWLINE, QUOTE]
MESSAGE = "\x1b[2Jsubject\x07\n\nbody\r\x1b]0;x\x07 \u202eend \u009b1m"


def clean(r: Run) -> Run:
    """``r``, once neither of its streams holds a raw dangerous character."""
    for name, data in (("stdout", r.stdout_bytes), ("stderr", r.stderr.encode())):
        found = RAW.search(data)
        assert found is None, f"raw {found.group()!r} in {name}: {data[:400]!r}"
    return r


def vs(*args: str, cwd: Path, code: int = 0, **kw: object) -> Run:
    r = run_vsync(*args, cwd=cwd, check=False, **kw)  # type: ignore[arg-type]
    assert r.returncode == code, (args, r.returncode, r.stderr)
    return clean(r)


def write(root: Path, name: str, data: str) -> None:
    (root / name).write_text(data)


@pytest.fixture
def hostile(work: Path) -> Path:
    """A repository whose files have hostile names and whose commits hostile messages."""
    for i, name in enumerate(NAMES):
        write(work, name, f"line {i}\n")
    run_vsync("commit", "-q", "-m", MESSAGE, cwd=work)
    write(work, TITLE, "line 0\nchanged\n")
    run_vsync("commit", "-q", "-m", "second \x1b[1mbold", cwd=work)
    return work


def test_quoting_follows_git() -> None:
    assert quote_path("plain é.txt") == "plain é.txt"
    assert quote_path(TITLE) == '"\\033]0;pwned\\a"'
    assert quote_path(QUOTE) == '"say \\"hi\\"\\tnow"'
    assert quote_path(BIDI) == '"report\\342\\200\\256txt.exe"'
    assert quote_path(C1) == '"c1\\302\\233name"'
    assert quote_path("bad\udc80byte") == '"bad\\200byte"'
    assert escape_text(MESSAGE) == (
        "\\033[2Jsubject\\a\n\nbody\\r\\033]0;x\\a \\342\\200\\256end \\302\\2331m"
    )
    assert one_line("a\nb\tc\u2028d") == "a\\nb\\tc\\342\\200\\250d"


def test_status_shows_hostile_names_quoted(hostile: Path) -> None:
    write(hostile, CR, "edited\n")
    (hostile / BIDI).unlink()
    write(hostile, "new\x1b[8mhidden", "x\n")
    porcelain = vs("status", "--porcelain", cwd=hostile).stdout.splitlines()
    assert porcelain == [
        ' M "a\\rb.txt"',
        '?? "new\\033[8mhidden"',
        ' D "report\\342\\200\\256txt.exe"',
    ]
    human = vs("status", cwd=hostile).stdout
    assert 'modified:     "a\\rb.txt"' in human


def test_commit_echoes_its_subject_escaped(work: Path) -> None:
    write(work, TITLE, "x\n")
    assert "] \\033[2Jsubject\\a\n" in vs("commit", "-m", MESSAGE, cwd=work).stdout


def test_log_show_and_history_escape_messages(hostile: Path) -> None:
    log = vs("log", cwd=hostile).stdout
    assert "    \\033[2Jsubject\\a\n\n    body\\r\\033]0;x\\a \\342\\200\\256end" in log
    oneline = vs("log", "--oneline", cwd=hostile).stdout
    assert "second \\033[1mbold" in oneline and "\\033[2Jsubject\\a" in oneline
    show = vs("show", "HEAD~1", cwd=hostile).stdout
    assert 'A\t"\\033]0;pwned\\a"' in show and 'A\t"two\\nlines"' in show
    listing = vs("show", "HEAD:", cwd=hostile).stdout.splitlines()
    assert '"\\033]0;pwned\\a"' in listing and '"c1\\302\\233name"' in listing
    vs("history", cwd=hostile)
    vs("history", TITLE, cwd=hostile)
    vs("log", "--follow", TITLE, cwd=hostile)
    vs("reflog", cwd=hostile)
    assert "\\033[1mbold" in vs("reflog", "--porcelain", cwd=hostile).stdout


def test_diff_quotes_hostile_names(hostile: Path) -> None:
    out = vs("diff", "HEAD~1", "HEAD", cwd=hostile).stdout
    assert 'diff --vsync "a/\\033]0;pwned\\a" "b/\\033]0;pwned\\a"' in out
    assert '--- "a/\\033]0;pwned\\a"\n+++ "b/\\033]0;pwned\\a"' in out
    write(hostile, C1, "\0binary now")
    (hostile / NEWLINE).unlink()
    out = vs("diff", cwd=hostile).stdout
    assert 'Binary "c1\\302\\233name": ' in out and 'diff --vsync "a/two\\nlines"' in out


def test_log_deleted_and_its_hint_escape_names(hostile: Path) -> None:
    (hostile / BIDI).unlink()
    vs("commit", "-m", "drop", cwd=hostile)
    r = vs("log", "--deleted", cwd=hostile)
    assert '"report\\342\\200\\256txt.exe" (7 bytes)' in r.stdout


def test_merge_output_escapes_names(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    vs("init", cwd=a)
    write(a, TITLE, "base\n")
    write(a, BIDI, "base\n")
    vs("commit", "-m", "base", cwd=a)
    vs("clone", str(a), str(b), cwd=tmp_path)
    write(a, TITLE, "ours\n")
    write(a, BIDI, "theirs side\n")
    run_vsync("commit", "-q", "-m", "a \x1b[2J", cwd=a)
    write(b, TITLE, "theirs\n")
    vs("commit", "-m", "b", cwd=b)
    plan = vs("pull", "--dry-run", cwd=b).stdout
    assert '"\\033]0;pwned\\a"' in plan and '"report\\342\\200\\256txt.exe"' in plan
    r = vs("pull", cwd=b, code=1)
    assert 'UU "\\033]0;pwned\\a"' in r.stdout
    assert '"\\033]0;pwned\\a"' in vs("resolve", "--list", cwd=b).stdout
    assert 'UU "\\033]0;pwned\\a"' in vs("status", "--porcelain", cwd=b).stdout
    vs("resolve", TITLE, "--ours", cwd=b)
    vs("commit", "-m", "merged \x1b[2J", cwd=b)


def test_errors_escape_what_they_quote(hostile: Path) -> None:
    r = vs("show", f"HEAD:{TITLE}x", cwd=hostile, code=2)
    assert r.stderr.count("\n") == 1 and "\\033]0;pwned\\ax" in r.stderr
    r = vs("log", "--rev", "\x1b[2J\rmain", cwd=hostile, code=2)
    assert r.stderr.count("\n") == 1 and "\\033[2J\\rmain" in r.stderr
    r = vs("-C", "\x1b[2Jnowhere", "status", cwd=hostile, code=1)
    assert r.stderr.count("\n") == 1
    r = vs("status", "\x1b[2J", cwd=hostile, code=2)  # argparse's own message
    assert r.stderr.count("\n") == 1 and "unrecognized arguments: \\033[2J" in r.stderr


def test_progress_shows_a_remote_label_escaped() -> None:
    from vsync.ui.progress import TerminalTransferProgress

    out = io.StringIO()
    progress = TerminalTransferProgress(out)
    progress.phase("Receiving from \x1b]0;pwned\x07\u202e", 2)
    progress.tick(1, 10, force=True)
    progress.done()
    line = out.getvalue()
    assert "Receiving from \\033]0;pwned\\a\\342\\200\\256: chunks 1/2" in line
    assert line.replace("\r\x1b[K", "").count("\x1b") == 0  # only its own redraw


@pytest.mark.parametrize("mode", ["error", "stderr"])
def test_a_peers_words_are_escaped_and_kept_on_one_line(hostile: Path, mode: str) -> None:
    cmd = f"{sys.executable} {HOSTILE_SERVE} {mode}"
    r = vs("fetch", str(hostile), "--remote-cmd", cmd, cwd=hostile, code=1)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("vsync: error: "), r.stderr
    assert "\\033[0m" in r.stderr
    if mode == "error":
        assert "\\033]0;pwned\\a\\033[2J\\rremote says: all is fine\\nvsync: push" in r.stderr


def test_the_conflict_shell_escapes_names(tmp_path: Path) -> None:
    """prompt-toolkit prints the shell's text as it is (ESC apart): the shell escapes it.

    prompt-toolkit itself moves the cursor with CR, so a CR is looked for
    where the data had one (the name ``a\\rb.txt``)."""
    from merge_repo import History

    from vsync.ui.conflict_shell import run_conflict_shell

    h = History(tmp_path / "work")
    try:
        names = (TITLE, CR, BIDI)
        base = h.commit({n: ("file", b"a\nb\nc\n", False) for n in names}, [], "base")
        ours = {n: ("file", "a\nours \u202e\nc\n".encode(), False) for n in names}
        theirs = {n: ("file", "a\ntheirs \x9b\nc\n".encode(), False) for n in names}
        other = h.commit(theirs, [base], "their\u202ehost")
        h.commit(ours, [base], "our\x9bhost")
        h.merge(other)
        buf = io.StringIO()
        with create_pipe_input() as pipe:
            pipe.send_text("list\nshow 1\nshow 2\nmarkers 2\nmarkers 3\nfoo\x1b[2J\n")
            pipe.close()
            run_conflict_shell(h.repo, input=pipe, output=PlainTextOutput(buf))
        screen = buf.getvalue().encode()
        found = re.search(RAW.pattern.replace(b"\\x0b-\\x1f", b"\\x0b\\x0c\\x0e-\\x1f"), screen)
        assert found is None, screen
        assert b"\\033]0;pwned\\a" in screen and b"a\\rb.txt" in screen
        assert b"+ours \\342\\200\\256" in screen and b"+theirs \\302\\233" in screen
    finally:
        h.close()


def test_the_history_browser_escapes_names_messages_and_content(hostile: Path) -> None:
    """prompt-toolkit shows C0 and C1 as ^X and <xx> itself, but not bidi controls."""
    from prompt_toolkit.output import DummyOutput

    from vsync.model.repository import Repository
    from vsync.ops.versions import load_history
    from vsync.ui.history_browser import HistoryBrowser

    write(hostile, BIDI, "text \u202e reversed \u0085 and \x1b[2J\n")
    msg = "bidi \u2066 isolate\x1b[2J"
    run_vsync("commit", "-q", "-m", msg, cwd=hostile, env={"VSYNC_HOST": "h\u202eost"})
    seen = ""
    for path, keys in ((BIDI, "q"), ("", "q"), (BIDI, "pq"), ("", "pq")):
        with Repository.open_path(hostile) as repo, create_pipe_input() as inp:
            b = HistoryBrowser(repo, load_history(repo, path), input=inp, output=DummyOutput())
            inp.send_text(keys)
            b.run()
            shown = [b._title(), b._list_fragments(), b._preview_fragments()]
            text = "".join(f[1] for fragments in shown for f in fragments)
            found = RAW.search(text.encode())
            assert found is None, text
            seen += text
    assert "h\\342" in seen and "reversed \\302\\205" in seen and "isolate\\033[2J" in seen
