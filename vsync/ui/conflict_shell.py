"""The interactive conflict shell: ``vsync resolve`` with no path, on a terminal.

A prompt-toolkit ``PromptSession`` (a REPL, so the terminal keeps its
scrollback and the editor can take it over between prompts): it lists the
conflicts, shows a conflict's three-way diff, its markers, and settles it
with the same operations as ``vsync resolve`` (:mod:`vsync.ops.merge.undoable`);
every choice can be undone. When nothing is unresolved it offers the merge
commit, which the caller makes (:class:`ShellResult`).

A :class:`~vsync.errors.VsyncError` from an action is one line in the shell,
which then goes on. ``input``/``output`` are prompt-toolkit objects (tests
pass a pipe input and a plain-text or dummy output); None is the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, NestedCompleter, WordCompleter
from prompt_toolkit.formatted_text import AnyFormattedText, FormattedText, to_formatted_text
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.shortcuts import print_formatted_text

from vsync.errors import UsageError, VsyncError
from vsync.model.ingest import Ingester
from vsync.model.repository import Repository
from vsync.ops.merge import MergeState, RepoContent, resolve, undoable
from vsync.ops.merge.resolve import require_state
from vsync.ops.merge.undoable import Undo
from vsync.ui import conflict_actions as actions
from vsync.ui import conflict_view as view
from vsync.ui.conflict_actions import ConflictInfo
from vsync.ui.escape import escape_text, safe_fragments
from vsync.wording import plural

# command -> its one-key alias
COMMANDS = {
    "list": "l",
    "show": "s",
    "markers": "v",
    "ours": "o",
    "theirs": "t",
    "base": "b",
    "both": "k",
    "edit": "e",
    "mark": "m",
    "undo": "u",
    "next": "n",
    "prev": "p",
    "goto": "g",
    "commit": "c",
    "help": "?",
    "quit": "q",
}
ALIASES = {alias: name for name, alias in COMMANDS.items()} | {"h": "help", "exit": "quit"}
TAKES_PATH = ("show", "markers", "ours", "theirs", "base", "both", "edit", "mark", "undo", "goto")
CHOICES = ("ours", "theirs", "base", "both", "mark")
DONE = {
    "ours": "took ours",
    "theirs": "took theirs",
    "base": "took the base version",
    "both": "kept both",
    "mark": "marked resolved as it is",
}


@dataclass
class ShellResult:
    """What the shell did. ``choices``: path -> how, for paths it left resolved."""

    resolved: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    remaining: list[str] = field(default_factory=list)
    commit_requested: bool = False
    message: str | None = None


class _Stop(Exception):
    """Leave the shell loop."""


class ConflictShell:
    def __init__(
        self,
        repo: Repository,
        ingester: Ingester,
        input: Input | None,
        output: Output | None,
        editor: str | None,
    ) -> None:
        self.repo = repo
        self.editor = editor
        self.reader = RepoContent(repo, ingester)
        self.state = require_state(repo)
        self.sides = view.Sides(
            actions.commit_info(repo, self.state.ours),
            actions.commit_info(repo, self.state.theirs),
            self.state.labels[2],
        )
        self.infos = actions.describe(self.state)
        if not self.infos:
            raise UsageError("the merge has no conflicts; run 'vsync commit' to finish it")
        self.current = (self.state.unresolved() or [self.infos[0].path])[0]
        self.undos: list[tuple[Undo, str | None]] = []  # with the choice it replaced
        self.choices: dict[str, str] = {}
        self.result = ShellResult()
        self.session: PromptSession[str] = PromptSession(
            input=input,
            output=output,
            completer=self._completer(),
            complete_while_typing=False,
            bottom_toolbar=self._toolbar,
            style=view.STYLE,
        )
        self.asker: PromptSession[str] = PromptSession(input=input, output=output)

    # -- output ----------------------------------------------------------------------------

    def emit(self, text: AnyFormattedText) -> None:
        """Everything the shell prints goes through here: names and content escaped."""
        safe = FormattedText(safe_fragments(to_formatted_text(text)))
        print_formatted_text(safe, end="", style=view.STYLE, output=self.session.app.output)

    def say(self, text: str, style: str = "") -> None:
        self.emit(view.line((style, text)))

    def error(self, text: str) -> None:
        self.emit(view.line(("class:error", "error: "), ("", text)))

    # -- state ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        state = MergeState.load(self.repo)
        if state is None or state.theirs != self.state.theirs:
            self.say("The merge is no longer in progress (committed or aborted elsewhere).")
            raise _Stop
        self.state = state
        self.infos = actions.describe(state)
        for path in [p for p in self.choices if not state.files[p].resolved]:
            del self.choices[path]

    def info(self, path: str) -> ConflictInfo:
        return next(i for i in self.infos if i.path == path)

    def target(self, arg: str) -> str:
        """A conflicted path from PATH or N; the current one when ``arg`` is empty."""
        arg = arg.strip()
        if not arg:
            return self.current
        if arg.isdigit():
            n = int(arg)
            if 1 <= n <= len(self.infos):
                return self.infos[n - 1].path
            raise UsageError(
                f"there is no conflict number {n}; they go from 1 to {len(self.infos)}"
            )
        paths = [i.path for i in self.infos]
        if arg in paths:
            return arg
        found = [p for p in paths if p.endswith("/" + arg.lstrip("/"))]
        if len(found) == 1:
            return found[0]
        raise UsageError(f"'{arg}' is not a conflicted path of this merge; 'list' shows them")

    # -- prompt-toolkit hooks ---------------------------------------------------------------------

    def _completer(self) -> Completer:
        words = [i.path for i in self.infos] + [str(i.index) for i in self.infos]
        paths = WordCompleter(words, sentence=True)
        options: dict[str, Completer | None] = {}
        for name, alias in COMMANDS.items():
            options[name] = paths if name in TAKES_PATH else None
            if alias.isalpha():
                options[alias] = options[name]
        return NestedCompleter(options)

    def _toolbar(self) -> AnyFormattedText:
        s = self.state.files.get(self.current)
        left = len(self.state.unresolved())
        bar = view.render_toolbar(self.info(self.current).index, len(self.infos), s, left)
        return FormattedText(safe_fragments(bar))

    def _prompt(self) -> AnyFormattedText:
        i = self.info(self.current)
        where = f"{i.index}/{len(self.infos)} {view.short_path(i.path, 40)}"
        return FormattedText([("class:prompt", escape_text(f"resolve {where}> ", keep=""))])

    # -- commands ------------------------------------------------------------------------------

    def run(self) -> ShellResult:
        self.cmd_list("")
        self.say("Type 'show' (s) for the current conflict, 'help' (?) for every command.")
        self._offer_commit()
        while True:
            try:
                text = self.session.prompt(self._prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            try:
                self.dispatch(text)
            except _Stop:
                break
            except VsyncError as exc:
                self.error(str(exc))
            except KeyboardInterrupt:
                self.error(
                    "interrupted; the command may be half done: 'list' shows where things are"
                )
            except OSError as exc:
                where = f" ({exc.filename})" if exc.filename else ""
                self.error(f"{exc.strerror or exc}{where}")
            if self.result.commit_requested:
                break
        return self._finish()

    def dispatch(self, text: str) -> None:
        word, _, arg = text.strip().partition(" ")
        if not word:
            return
        if word.isdigit():
            word, arg = "goto", word
        name = ALIASES.get(word, word.lower())
        if name not in COMMANDS:
            raise UsageError(f"unknown command '{word}'; type 'help' (or ?) for the list")
        self.refresh()
        if name in CHOICES:
            self.choose(self.target(arg), name)
        else:
            getattr(self, f"cmd_{name}")(arg.strip())

    def cmd_list(self, arg: str) -> None:
        out = view.render_list(self.infos, self.current, self.sides, self.reader, self.choices)
        self.emit(out)

    def cmd_show(self, arg: str) -> None:
        info = self.info(self.target(arg))
        self.emit(
            view.render_show(
                info, len(self.infos), self.sides, self.reader, self.choices.get(info.path)
            )
        )

    def cmd_markers(self, arg: str) -> None:
        path = self.target(arg)
        data, what = actions.folder_bytes(self.repo, path)
        self.emit(view.render_markers(path, data, what))

    def choose(self, path: str, how: str) -> None:
        undo = undoable.choose(self.repo, path, how)
        self._done(undo, how, f"{path}: {DONE[how]}")

    def _done(self, undo: Undo, how: str, message: str) -> None:
        self.undos.append((undo, self.choices.get(undo.path)))
        self.refresh()
        if self.state.files[undo.path].resolved:
            self.choices[undo.path] = how
        left = len(self.state.unresolved())
        self.say(f"{message} ({left} unresolved)", "class:ok")
        self.current = undo.path
        self._advance()

    def _advance(self) -> None:
        """Go to the next unresolved conflict after the current one (wrapping), and show it."""
        unresolved = self.state.unresolved()
        if not unresolved:
            self._offer_commit()
            return
        later = [p for p in unresolved if p > self.current]
        self.current = (later or unresolved)[0]
        self.cmd_show("")

    def _offer_commit(self) -> None:
        if self.state.unresolved():
            return
        msg = actions.default_message(self.sides.theirs)
        self.say(
            f"Every conflict is resolved. 'commit' makes the merge commit (message: \"{msg}\"), "
            "'commit MESSAGE' with your own message; 'undo' takes back the last choice.",
            "class:note",
        )

    def cmd_edit(self, arg: str) -> None:
        path = self.target(arg)
        undo, changed = actions.edit(self.repo, path, self.editor)
        data, _what = actions.folder_bytes(self.repo, path)
        markers = data is not None and actions.has_markers(data)
        note = " It still has conflict markers." if markers else ""
        if not changed:
            note = " The file did not change." + note
        answer = self.asker.prompt(f"{note.strip()} Mark '{path}' resolved? [y/N] ".lstrip())
        if answer.strip().lower() in ("y", "yes"):
            resolve(self.repo, [path], "mark")
            self._done(undo, "edited", f"{path}: edited and marked resolved")
        elif changed:
            self.undos.append((undo, self.choices.get(path)))
            if undo.was_resolved:
                self.say(f"{path}: edited; it stays resolved")
            else:
                self.say(f"{path}: edited; still unresolved ('mark' when it is done)")

    def cmd_undo(self, arg: str) -> None:
        path = self.target(arg) if arg else None
        picks = [k for k, (u, _c) in enumerate(self.undos) if path is None or u.path == path]
        if picks:
            undo, before = self.undos.pop(picks[-1])
            undoable.restore(self.repo, undo)
            self.refresh()
            if before is not None and self.state.files[undo.path].resolved:
                self.choices[undo.path] = before
            again = "resolved" if undo.was_resolved else "unresolved"
            self.say(f"{undo.path}: undid '{undo.action}'; it is {again} again", "class:ok")
            path = undo.path
        elif path is None:
            raise UsageError("nothing to undo in this session; 'undo PATH' reopens a resolved path")
        else:
            undoable.reopen(self.repo, path)
            self.refresh()
            self.say(f"{path}: reopened; the merge's version is back and it is unresolved")
        self.current = path
        self.cmd_show("")

    def _move(self, step: int) -> None:
        paths = [i.path for i in self.infos]
        k = paths.index(self.current) + step
        if not 0 <= k < len(paths):
            self.say(f"already at the {'last' if step > 0 else 'first'} conflict", "class:note")
            return
        self.current = paths[k]
        self.cmd_show("")

    def cmd_next(self, arg: str) -> None:
        self._move(1)

    def cmd_prev(self, arg: str) -> None:
        self._move(-1)

    def cmd_goto(self, arg: str) -> None:
        if not arg:
            raise UsageError("goto needs a path or a number; 'list' shows them")
        self.current = self.target(arg)
        self.cmd_show("")

    def cmd_commit(self, arg: str) -> None:
        left = self.state.unresolved()
        if left:
            names = ", ".join(f"'{p}'" for p in left[:3]) + (" ..." if len(left) > 3 else "")
            raise UsageError(
                f"{plural(len(left), 'conflict')} {'is' if len(left) == 1 else 'are'} "
                "still unresolved "
                f"({names}); settle them first"
            )
        self.result.commit_requested = True
        self.result.message = arg or actions.default_message(self.sides.theirs)

    def cmd_help(self, arg: str) -> None:
        self.emit(view.render_help())

    def cmd_quit(self, arg: str) -> None:
        raise _Stop

    def _finish(self) -> ShellResult:
        state = MergeState.load(self.repo)
        if state is not None:
            self.result.remaining = state.unresolved()
            done = [p for p in self.choices if state.files[p].resolved]
            self.result.resolved = done
            self.result.choices = {p: self.choices[p] for p in done}
            if not self.result.commit_requested:
                left = len(self.result.remaining)
                if left:
                    then = "'vsync resolve' continues, 'vsync merge --abort' gives up the merge"
                    what = f"{left} unresolved"
                else:
                    then = "'vsync commit -m MESSAGE' makes the merge commit"
                    what = "all resolved, not committed"
                self.say(f"Left the conflict shell ({what}): {then}.")
        return self.result


def run_conflict_shell(
    repo: Repository,
    *,
    input: Input | None = None,
    output: Output | None = None,
    editor: str | None = None,
) -> ShellResult:
    """Run the shell on the repository's merge in progress until quit or commit."""
    repo.require_worktree()
    with repo.ingester() as ingester:
        return ConflictShell(repo, ingester, input, output, editor).run()
