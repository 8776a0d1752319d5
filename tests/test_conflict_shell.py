"""The conflict shell driven through prompt-toolkit's pipe input, on real merges.

Every test builds a real repository whose merge left four conflicts (text,
binary, file/folder, modify/delete), types commands into the shell as a user
would, and checks what it did to the folder and to the merge state, and what
it showed (plain-text output; one test reads the colours of a VT100 output).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from merge_repo import History, Spec
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.data_structures import Size
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import Output
from prompt_toolkit.output.plain_text import PlainTextOutput
from prompt_toolkit.output.vt100 import Vt100_Output

from vsync.errors import UsageError
from vsync.model.ingest import Ingester
from vsync.ops.merge import MergeState, RepoContent, abort, resolve
from vsync.ui.conflict_shell import ConflictShell, ShellResult, run_conflict_shell

B0, B1, B2 = b"\0\1base", b"\0\1ours!", b"\0\1theirs!!"
MARKED = "a\n<<<<<<< ours"  # how the merged t.txt starts


def F(content: bytes | str) -> tuple[str, bytes | str, bool]:
    return ("file", content.encode() if isinstance(content, str) else content, False)


BASE: Spec = {"t.txt": F("a\nb\nc\n"), "bin.dat": F(B0), "md.txt": F("m\n"), "keep": F("k\n")}
OURS: Spec = {**BASE, "t.txt": F("a\nB ours\nc\n"), "bin.dat": F(B1), "md.txt": F("m ours\n")}
OURS["box"] = F("ours box\n")
THEIRS: Spec = {**BASE, "t.txt": F("a\nB theirs\nc\n"), "bin.dat": F(B2), "box/in.txt": F("i\n")}
del THEIRS["md.txt"]
PATHS = ["bin.dat", "box", "md.txt", "t.txt"]  # list order: 1..4


class Merge:
    def __init__(self, root: Path) -> None:
        self.h = History(root)
        self.base = self.h.commit(BASE, [], "basehost")
        self.theirs = self.h.commit(THEIRS, [self.base], "theirhost")
        self.ours = self.h.commit(OURS, [self.base], "ourhost")
        self.h.merge(self.theirs)
        self.marked = self.read("t.txt")
        assert self.marked.startswith(MARKED)

    @property
    def root(self) -> Path:
        return self.h.root

    def read(self, path: str) -> str:
        return (self.root / path).read_text()

    def state(self) -> MergeState:
        state = MergeState.load(self.h.repo)
        assert state is not None
        return state

    def copies(self, stem: str) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith(stem + ".conflict-"))

    def shell(
        self, *lines: str, editor: str | None = None, output: Output | None = None
    ) -> tuple[ShellResult, str]:
        """Type ``lines`` (then end of input: Ctrl-D) into a shell; its result and screen."""
        buf = io.StringIO()
        with create_pipe_input() as pipe:
            pipe.send_text("".join(line + "\n" for line in lines))
            pipe.close()
            result = run_conflict_shell(
                self.h.repo, input=pipe, output=output or PlainTextOutput(buf), editor=editor
            )
        return result, buf.getvalue().replace("\r\n", "\n")


@pytest.fixture
def merge(tmp_path: Path) -> Iterator[Merge]:
    m = Merge(tmp_path / "work")
    try:
        yield m
    finally:
        m.h.close()


def after(text: str, typed: str) -> str:
    """What the screen shows after the last time ``typed`` was entered at the prompt."""
    return text[text.rindex(f"> {typed}\n") + len(typed) + 3 :]


# -- what it shows ----------------------------------------------------------------------------


def test_start_lists_the_conflicts_with_kind_sizes_hosts_and_times(merge: Merge) -> None:
    result, screen = merge.shell()
    header, _columns, *rows = screen.splitlines()[:6]
    assert "Merging theirs " + merge.theirs.decode()[:10] in header
    assert "theirhost" in header and "ourhost" in header and "4 unresolved" in header
    for n, (row, kind) in enumerate(
        zip(rows, ["binary", "file-folder", "modify-delete", "content"], strict=True), 1
    ):
        assert re.match(rf"^ [ >]\s+{n}  {re.escape(PATHS[n - 1])}\s+{kind}\s+unresolved ", row)
    assert rows[0].startswith(" >")  # the current conflict: the first unresolved
    assert f"{len(B1)} B, ourhost 20" in rows[0] and f"{len(B2)} B, theirhost 20" in rows[0]
    assert "deleted, theirhost" in rows[2]
    assert result.commit_requested is False and result.remaining == PATHS
    assert "Left the conflict shell (4 unresolved)" in screen


def test_show_gives_the_three_way_diff_of_a_text(merge: Merge) -> None:
    _, screen = merge.shell("goto t.txt", "show")
    shown = after(screen, "show")
    assert "[4/4] t.txt  content conflict (UU), unresolved" in shown
    ours_part, theirs_part = shown.split("base -> theirs")
    assert "base -> ours (ourhost" in ours_part
    assert "\n-b\n" in ours_part and "\n+B ours\n" in ours_part and "B theirs" not in ours_part
    assert "\n-b\n" in theirs_part and "\n+B theirs\n" in theirs_part


def test_show_colours_the_diff(merge: Merge) -> None:
    buf = io.StringIO()
    output = Vt100_Output(buf, lambda: Size(rows=40, columns=120), term="xterm")
    merge.shell("4", output=output)
    screen = buf.getvalue()
    green, red, cyan = "\x1b[0;32m", "\x1b[0;31m", "\x1b[0;36m"
    assert green + "+B theirs" in screen and red + "-b" in screen and cyan + "@@ -1,3" in screen


def test_show_a_binary_gives_sizes_ids_and_the_copy(merge: Merge) -> None:
    _, screen = merge.shell("show bin.dat")
    shown = after(screen, "show bin.dat")
    state = merge.state().files["bin.dat"]
    assert state.ours is not None and state.theirs is not None
    assert f"ours   {len(B1)} B" in shown and "id " + state.ours[1].decode()[:10] in shown
    assert f"theirs {len(B2)} B" in shown and "id " + state.theirs[1].decode()[:10] in shown
    assert f"beside it as '{merge.copies('bin')[0]}'" in shown
    assert "not text" in shown


def test_markers_shows_the_file_as_it_is_in_the_folder(merge: Merge) -> None:
    _, screen = merge.shell("markers 4", "v 1")
    shown = after(screen, "markers 4")
    for n, text in enumerate(merge.marked.splitlines(), 1):
        assert f"{n:>5} {text}\n" in shown
    assert "a binary file of" in after(screen, "v 1")


def test_moving_between_conflicts(merge: Merge) -> None:
    _, screen = merge.shell("n", "next", "p", "goto t.txt", "g md.txt", "1", "prev")
    assert after(screen, "n").startswith("[2/4] box")
    assert after(screen, "next").startswith("[3/4] md.txt")
    assert after(screen, "p").startswith("[2/4] box")
    assert after(screen, "goto t.txt").startswith("[4/4] t.txt")
    assert after(screen, "g md.txt").startswith("[3/4] md.txt")
    assert after(screen, "1").startswith("[1/4] bin.dat")
    assert "already at the first conflict" in after(screen, "prev")
    assert "resolve 1/4 bin.dat> " in screen and "resolve 3/4 md.txt> " in screen


def test_help(merge: Merge) -> None:
    _, screen = merge.shell("?")
    shown = after(screen, "?")
    for command in ("ours", "theirs", "base", "both", "edit", "markers", "undo", "commit"):
        assert f"\n  {command}" in shown


def test_completion_of_commands_and_paths(merge: Merge) -> None:
    repo = merge.h.repo
    with create_pipe_input() as pipe, Ingester(repo.config.chunker_params(), 3) as ing:
        shell = ConflictShell(repo, ing, pipe, PlainTextOutput(io.StringIO()), None)
        completer = shell.session.completer
        assert completer is not None

        def complete(text: str) -> list[str]:
            found = completer.get_completions(
                Document(text), CompleteEvent(completion_requested=True)
            )
            return sorted(c.text for c in found)

        assert complete("th") == ["theirs"]
        assert complete("goto b") == ["bin.dat", "box"]
        assert complete("theirs m") == ["md.txt"]
        assert complete("o t") == ["t.txt"]
        assert "commit" in complete("c") and "undo" in complete("u")


# -- what it does ---------------------------------------------------------------------------------


def test_take_theirs_then_undo_puts_the_markers_back(merge: Merge) -> None:
    result, screen = merge.shell("goto t.txt", "theirs")
    assert merge.read("t.txt") == "a\nB theirs\nc\n"
    assert "t.txt" not in merge.state().unresolved()
    assert "t.txt: took theirs (3 unresolved)" in screen
    assert result.choices == {"t.txt": "theirs"} and result.resolved == ["t.txt"]

    merge.shell("4", "ours", "undo")
    assert merge.read("t.txt") == "a\nB theirs\nc\n"  # undo goes back to what it was before ours
    assert "t.txt" not in merge.state().unresolved()

    result, screen = merge.shell("undo t.txt")  # resolved before this shell: reopen
    assert merge.read("t.txt") == merge.marked
    assert "t.txt" in merge.state().unresolved()
    assert "reopened" in screen and result.remaining == PATHS


def test_every_choice_and_its_undo_on_a_text(merge: Merge) -> None:
    expected = {
        "ours": "a\nB ours\nc\n",
        "base": "a\nb\nc\n",
        "both": "a\nB ours\nB theirs\nc\n",
    }
    for how, text in expected.items():
        merge.shell("4", how)
        assert merge.read("t.txt") == text, how
        merge.shell("undo 4")
        assert merge.read("t.txt") == merge.marked, how
        assert "t.txt" in merge.state().unresolved()


def test_binary_choices_and_undo_restore_the_copy(merge: Merge) -> None:
    copy = merge.copies("bin")
    assert len(copy) == 1 and (merge.root / copy[0]).read_bytes() == B2
    result, screen = merge.shell("theirs", "undo", "both")
    assert (merge.root / "bin.dat").read_bytes() == B1  # both: ours in place ...
    assert merge.copies("bin") == copy and (merge.root / copy[0]).read_bytes() == B2  # ... theirs
    assert "bin.dat" not in merge.state().unresolved()
    assert "bin.dat: undid 'theirs'; it is unresolved again" in screen
    assert result.choices == {"bin.dat": "both"}

    merge.shell("undo bin.dat", "t")
    assert (merge.root / "bin.dat").read_bytes() == B2 and merge.copies("bin") == []
    merge.shell("undo 1")
    assert (merge.root / "bin.dat").read_bytes() == B1 and merge.copies("bin") == copy
    assert "bin.dat" in merge.state().unresolved()


def test_modify_delete_take_theirs_deletes_and_undo_brings_it_back(merge: Merge) -> None:
    merge.shell("goto md.txt", "t")
    assert not (merge.root / "md.txt").exists()
    merge.shell("undo md.txt")
    assert merge.read("md.txt") == "m ours\n" and "md.txt" in merge.state().unresolved()


def test_an_error_is_one_line_and_the_shell_goes_on(merge: Merge) -> None:
    result, screen = merge.shell("goto box", "ours", "frobnicate", "goto 9", "undo", "theirs")
    assert "error: 'box' is a folder now, so the ours file cannot go there" in screen
    assert "error: unknown command 'frobnicate'" in screen
    assert "error: there is no conflict number 9" in screen
    assert "error: nothing to undo in this session" in screen
    assert "Traceback" not in screen
    assert "box: took theirs (3 unresolved)" in screen  # the last command still ran
    assert (merge.root / "box" / "in.txt").is_file() and merge.copies("box") == []
    assert result.choices == {"box": "theirs"}


def test_edit_runs_the_editor_then_marks_and_undo_restores(merge: Merge) -> None:
    editor = 'sh -c \'printf "hand merged\\n" > "$1"\' --'
    result, screen = merge.shell("4", "edit", "y", editor=editor)
    assert merge.read("t.txt") == "hand merged\n"
    assert "t.txt" not in merge.state().unresolved()
    assert "Mark 't.txt' resolved? [y/N]" in screen and result.choices == {"t.txt": "edited"}
    assert "t.txt: edited and marked resolved (3 unresolved)" in screen

    again = 'sh -c \'printf "second thoughts\\n" > "$1"\' --'
    _, screen = merge.shell("4", "edit", "n", editor=again)
    assert merge.read("t.txt") == "second thoughts\n" and "edited; it stays resolved" in screen
    merge.shell("4", "edit", "n", "undo", editor=editor)
    assert merge.read("t.txt") == "second thoughts\n"  # the edit undone: back to before it
    assert "t.txt" not in merge.state().unresolved()

    merge.shell("4", "edit", "y", "undo", editor=editor)  # undo an edit and its mark
    assert merge.read("t.txt") == "second thoughts\n"
    merge.shell("undo t.txt")
    assert merge.read("t.txt") == merge.marked and "t.txt" in merge.state().unresolved()


def test_edit_that_changes_nothing_is_not_marked(merge: Merge) -> None:
    _, screen = merge.shell("4", "e", "", editor="true")
    assert "The file did not change. It still has conflict markers." in screen
    assert merge.read("t.txt") == merge.marked and "t.txt" in merge.state().unresolved()
    _, screen = merge.shell("4", "e", editor="false")
    assert "error: the editor exited with status 1; 't.txt' was not marked" in screen
    _, screen = merge.shell("2", "e", editor="true")
    assert "error: 'box' is a folder now" in screen


def test_ctrl_c_while_the_editor_runs_belongs_to_the_editor(merge: Merge) -> None:
    editor = 'sh -c \'kill -INT $PPID; sleep 0.2; printf "calm\\n" > "$1"\' --'
    _, screen = merge.shell("4", "e", "y", editor=editor)
    assert "interrupted" not in screen and "t.txt: edited and marked resolved" in screen
    assert merge.read("t.txt") == "calm\n"


def test_edit_then_undo_keeps_the_replaced_edit_in_the_merge_state(merge: Merge) -> None:
    editor = 'sh -c \'printf "my precious edit\\n" > "$1"\' --'
    merge.shell("4", "e", "n", "undo", editor=editor)
    assert merge.read("t.txt") == merge.marked
    repo = merge.h.repo
    kept = [e for p, e in merge.state().kept if p == "t.txt"]
    with Ingester(repo.config.chunker_params(), repo.config.compression_level()) as ing:
        texts = [RepoContent(repo, ing).read(e) for e in kept]
    assert b"my precious edit\n" in texts


def test_commit_is_offered_once_nothing_is_unresolved(merge: Merge) -> None:
    result, screen = merge.shell("commit", "o", "t", "o", "k")
    assert "error: 4 conflicts are still unresolved ('bin.dat', 'box', 'md.txt' ...)" in screen
    assert not result.commit_requested and merge.state().unresolved() == []
    assert "Every conflict is resolved. 'commit' makes the merge commit" in screen
    assert result.choices == {"bin.dat": "ours", "box": "theirs", "md.txt": "ours", "t.txt": "both"}
    assert "all resolved, not committed" in screen

    result, screen = merge.shell("c")  # a new shell offers it right away
    assert "Every conflict is resolved" in screen.split("resolve ")[0]
    assert result.commit_requested
    assert result.message == f"Merge {merge.theirs.decode()[:10]} from theirhost"
    assert "Left the conflict shell" not in screen

    result, _ = merge.shell("commit Joined the laptop's work")
    assert result.commit_requested and result.message == "Joined the laptop's work"


def test_no_merge_in_progress(merge: Merge) -> None:
    abort(merge.h.repo)
    with pytest.raises(UsageError, match="no merge is in progress"):
        merge.shell("q")


def test_merge_finished_elsewhere_ends_the_shell(merge: Merge) -> None:
    editor = f"sh -c 'rm -r {merge.h.repo.control / 'merge'}' --"
    result, screen = merge.shell("4", "e", "n", "theirs", editor=editor)
    assert "The merge is no longer in progress" in screen
    assert "took theirs" not in screen and not result.commit_requested


def test_resolved_outside_the_shell_shows_as_resolved(merge: Merge) -> None:
    resolve(merge.h.repo, ["md.txt"], "ours")
    _, screen = merge.shell("l")
    row = next(line for line in after(screen, "l").splitlines() if " md.txt " in line)
    assert "resolved" in row and "unresolved" not in row
    assert os.path.exists(merge.root / "md.txt")
