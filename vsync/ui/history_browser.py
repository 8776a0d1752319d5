"""The full-screen history browser: ``vsync history [PATH]`` on a terminal.

A prompt-toolkit ``Application``: the versions of a file (or, for a folder,
its commits) down the left, newest first; a preview of the selected one on
the right (numbered text, binary details with the content's BLAKE3, a
commit's changed paths, or a coloured diff); a status line and the key hints
at the bottom; ``?`` lays the help over it. See :data:`history_view.FILE_KEYS`.

Everything is read lazily, for the selected row only. The BLAKE3 of a large
binary version (over :attr:`HistoryBrowser.inline_hash_limit`) is computed
in a worker thread with its own repository handle, so moving through the
list never waits for it; the preview says "computing" until it is there.

An action that fails with a :class:`~vsync.errors.VsyncError` (say, restore
refusing to overwrite uncommitted edits) or an OSError puts its message in
the status line; the browser goes on. ``input``/``output`` are prompt-toolkit
objects (tests pass a pipe input and a dummy output); None is the terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition, FilterOrBool
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    ConditionalContainer,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.output import Output
from prompt_toolkit.widgets import Frame

from vsync.errors import UncommittedChanges, VsyncError
from vsync.model.repository import Repository
from vsync.ops.diff import Pair, file_diffs
from vsync.ops.versions import (
    FileVersion,
    FolderCommit,
    PathHistory,
    Preview,
    PreviewKind,
    content_blake3,
    pairs_between,
    pairs_of_commit,
    pairs_with_folder,
    read_preview,
    restore_in_place,
    save_beside,
)
from vsync.ui import history_rows as rows
from vsync.ui import history_view as view
from vsync.ui.escape import escape_text, one_line, safe_fragments
from vsync.wording import plural

INLINE_HASH = 32 * 1024 * 1024  # larger versions are hashed in the background
WIDE = 10_000  # the preview "wants" the whole width: it takes what the list leaves
VIEWS = ("content", "current", "previous")
Handler = Callable[[KeyPressEvent], None]


class HistoryBrowser:
    def __init__(
        self,
        repo: Repository,
        history: PathHistory,
        *,
        input: Input | None = None,
        output: Output | None = None,
    ) -> None:
        self.repo = repo
        self.history = history
        self.folder = history.folder
        self.index = 0
        items = history.commits if self.folder else history.versions
        self.hosts = rows.host_width([item.entry for item in items])
        self._row_texts: list[str] | None = None
        self.view = "content"
        self.status: tuple[str, str] = ("", "")
        self.help_visible = False
        self.preview_top = 0
        self.inline_hash_limit = INLINE_HASH
        self.hashes: dict[bytes, str] = {}  # manifest id -> BLAKE3 hex (or why not)
        self._previews: dict[int, Preview] = {}
        self._diffs: dict[tuple[int, str], FormattedText] = {}
        self._hashing: bytes | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False  # the browser has quit: no more background work
        self.preview_window = Window(
            FormattedTextControl(
                self._preview_fragments, get_cursor_position=lambda: Point(0, self.preview_top)
            ),
            width=Dimension(weight=3, preferred=WIDE),
            wrap_lines=False,
            get_vertical_scroll=lambda _w: self.preview_top,
        )
        self.app: Application[None] = Application(
            layout=Layout(self._container()),
            key_bindings=self._bindings(),
            style=view.STYLE,
            full_screen=True,
            input=input,
            output=output,
        )
        self.app.ttimeoutlen = 0.05  # a lone Esc quits without a half-second wait

    # -- what is selected ------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.history.commits if self.folder else self.history.versions)

    def version(self) -> FileVersion | None:
        v = self.history.versions
        return v[self.index] if not self.folder and v else None

    def commit(self) -> FolderCommit | None:
        c = self.history.commits
        return c[self.index] if self.folder and c else None

    # -- layout ----------------------------------------------------------------------------------

    def _container(self) -> FloatContainer:
        rows = Window(
            FormattedTextControl(
                self._list_fragments,
                focusable=True,
                show_cursor=False,
                get_cursor_position=lambda: Point(0, self.index),
            ),
            width=lambda: Dimension.exact(self._list_width()),
            wrap_lines=False,
            always_hide_cursor=True,
        )
        body = VSplit([rows, Window(width=1, char="│", style="class:dim"), self.preview_window])
        root = HSplit(
            [
                Window(FormattedTextControl(self._title), height=1, style="class:title"),
                body,
                Window(FormattedTextControl(self._status_fragments), height=1),
                Window(
                    FormattedTextControl(lambda: view.toolbar_text(self.folder)),
                    height=1,
                    style="class:toolbar",
                ),
            ]
        )
        help_box = Frame(
            Window(FormattedTextControl(lambda: view.render_help(self.folder)), style="class:help"),
            title="vsync history: keys",
        )
        shown = Condition(lambda: self.help_visible)
        return FloatContainer(root, floats=[Float(ConditionalContainer(help_box, filter=shown))])

    def _title(self) -> FormattedText:
        what = self.history.path or "(the whole folder)"
        noun = "commit" if self.folder else "version"
        n = self.count
        title = f" vsync history {what}: {plural(n, noun)}, newest first "
        return FormattedText([("", escape_text(title, keep=""))])

    def _rows(self) -> list[str]:
        """The list's rows (made once: the history does not change while browsing)."""
        if self._row_texts is None:
            if self.folder:
                made = [rows.commit_row(c, self.hosts) for c in self.history.commits]
            else:
                made = [rows.version_row(v, self.hosts) for v in self.history.versions]
            self._row_texts = made
        return self._row_texts

    def _list_width(self) -> int:
        columns = self.app.output.get_size().columns
        return rows.list_width(columns, self._rows(), self.hosts, self.folder)

    def _list_fragments(self) -> FormattedText:
        return FormattedText(safe_fragments(view.render_list(self._rows(), self.index)))

    def _status_fragments(self) -> FormattedText:
        style, text = self.status
        return FormattedText([(style, " " + escape_text(text, keep=""))])

    # -- the preview -------------------------------------------------------------------------------

    def _preview_fragments(self) -> FormattedText:
        """The right-hand pane: names, messages and content escaped for the terminal."""
        try:
            return FormattedText(safe_fragments(self._build_preview()))
        except (VsyncError, OSError) as exc:
            return FormattedText([("class:error", f"cannot show this: {one_line(str(exc))}\n")])

    def preview_text(self) -> str:
        """The preview as plain text (what the right-hand pane holds)."""
        return view.plain(self._preview_fragments())

    def _build_preview(self) -> FormattedText:
        if self.count == 0:
            return FormattedText([("class:dim", "nothing to show\n")])
        if self.view == "content":
            commit = self.commit()
            if commit is not None:
                return view.render_commit(commit)
            v = self.version()
            assert v is not None
            preview = self._previews.get(self.index)
            if preview is None:
                preview = self._previews[self.index] = read_preview(self.repo, v)
            digest = self._digest(v) if preview.kind is not PreviewKind.TEXT else ""
            return view.render_version(v, preview, digest)
        key = (self.index, self.view)
        if key not in self._diffs:
            self._diffs[key] = self._diff()
        return self._diffs[key]

    def _diff(self) -> FormattedText:
        v, c = self.version(), self.commit()
        warnings: list[str] = []
        pairs: list[Pair]
        if self.view == "current":
            if self.repo.root is None:
                return FormattedText([("class:note", "a bare repository has no folder to diff\n")])
            sel = v or c
            assert sel is not None
            path = self.history.path
            pairs = pairs_with_folder(self.repo, sel.commit_id, path, warnings.append)
            title = f"{path or 'the folder'}: {sel.short} -> the folder now"
            empty = "no difference: the folder holds this version"
        elif v is not None:
            older = self.history.versions[self.index + 1 : self.index + 2]
            prev = older[0] if older else None
            pairs = pairs_between(prev, v)
            title = f"{v.path}: {prev.short if prev else '(nothing)'} -> {v.short}"
            empty = "no difference from the previous version"
        else:
            assert c is not None
            parent = c.entry.parents[0].decode()[:10] if c.entry.parents else "(nothing)"
            pairs = pairs_of_commit(self.repo, c, self.history.path)
            title = f"what {c.short} changed: {parent} -> {c.short}"
            empty = "this commit changed nothing here"
        shown = view.render_diffs(title, pairs, lambda p: file_diffs(self.repo, [p]), empty)
        if warnings:
            shown = FormattedText([("class:note", w + "\n") for w in warnings] + list(shown))
        return shown

    def _digest(self, v: FileVersion) -> str:
        """The version's BLAKE3, computing it now (small) or in the background (large)."""
        known = self.hashes.get(v.oid)
        if known is not None:
            return known
        if v.size <= self.inline_hash_limit:
            digest = content_blake3(self.repo, v)
            assert digest is not None
            self.hashes[v.oid] = digest
            return digest
        if self._closed:
            return "(not computed)"
        if self._hashing != v.oid:
            self._start_hash(v)
        return "computing…"

    def _start_hash(self, v: FileVersion) -> None:
        self._stop.set()  # the previous selection's hash is no longer wanted
        stop = threading.Event()
        self._stop, self._hashing = stop, v.oid
        worker = threading.Thread(
            target=self._hash_worker, args=(v, stop), name="vsync-history-blake3", daemon=True
        )
        self._threads.append(worker)
        worker.start()

    def _hash_worker(self, v: FileVersion, stop: threading.Event) -> None:
        digest: str | None
        try:
            with Repository(self.repo.control, self.repo.root) as repo:  # this thread's own
                digest = content_blake3(repo, v, stop.is_set)
        except Exception as exc:  # shown in the preview; the browser goes on
            digest = f"(could not compute it: {exc})"
        if digest is not None:
            self.hashes[v.oid] = digest
        if self._hashing == v.oid:
            self._hashing = None
        self.app.invalidate()

    def wait_for_hashes(self, timeout: float = 30.0) -> None:
        """Wait for background hashing to finish (tests; and on leaving)."""
        for worker in self._threads:
            worker.join(timeout)
        self._threads = [w for w in self._threads if w.is_alive()]

    # -- actions ------------------------------------------------------------------------------

    def _say(self, text: str, style: str = "class:ok") -> None:
        self.status = (style, text)

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except VsyncError as exc:
            self._say(f"error: {exc}", "class:error")
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            self._say(f"error: {exc.strerror or exc}{where}", "class:error")

    def select(self, index: int) -> None:
        index = max(0, min(index, self.count - 1))
        if index != self.index:
            self.index = index
            self.preview_top = 0

    def show(self, which: str) -> None:
        assert which in VIEWS
        if which == "current":  # the folder may have changed since: diff it again
            self._diffs = {k: d for k, d in self._diffs.items() if k[1] != "current"}
        self.view = which
        self.preview_top = 0

    def scroll(self, pages: float) -> None:
        info = self.preview_window.render_info
        height = info.window_height if info is not None else 20
        lines = view.plain(self._preview_fragments()).count("\n")
        top = self.preview_top + int(pages * max(1, height - 1))
        self.preview_top = max(0, min(top, lines - height))

    def _working_changed(self) -> None:
        self._diffs.clear()

    def restore(self) -> None:
        v, c = self.version(), self.commit()
        if v is None:
            short = c.short if c is not None else "REV"
            self._say(
                f"r restores one file; put a whole commit in the folder with "
                f"'vsync checkout {short}'",
                "class:note",
            )
            return
        if self.repo.root is None:
            self._say("a bare repository has no folder to restore into", "class:note")
            return
        warnings: list[str] = []
        try:
            result = restore_in_place(self.repo, v, warnings.append)
        except UncommittedChanges as exc:
            self._say(f"error: {exc} (or press s to save this version beside it)", "class:error")
            return
        finally:
            self._working_changed()
        if result.written:
            text = f"restored {v.path} as of {v.short} ({rows.when(v.entry)})"
        else:
            text = f"{v.path} already is the version of {v.short}; nothing was written"
        self._say("; ".join([text, *warnings]))

    def save(self) -> None:
        v = self.version()
        if v is None:
            self._say("s saves a file's version; run 'vsync history PATH' on a file", "class:note")
            return
        if self.repo.root is None:
            self._say("a bare repository has no folder to save into", "class:note")
            return
        rel = save_beside(self.repo, v)
        self._working_changed()
        self._say(f"saved {v.short}'s version of {v.path} as {rel}")

    # -- keys -------------------------------------------------------------------------------------

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        helping = Condition(lambda: self.help_visible)
        browsing = ~helping

        def on(*keys: str, when: FilterOrBool = browsing) -> Callable[[Handler], Handler]:
            return kb.add(*keys, filter=when)

        @on("q", when=True)
        @on("c-c", when=True)
        @on("escape")
        def _quit(event: KeyPressEvent) -> None:
            event.app.exit()

        @on("escape", when=helping)
        @on("?", when=helping)
        @on("<any>", when=helping)
        def _close_help(event: KeyPressEvent) -> None:
            self.help_visible = False

        @on("?")
        def _help(event: KeyPressEvent) -> None:
            self.help_visible = True

        def bind(key: str, action: Callable[[], None]) -> None:
            on(key)(lambda _event: action())

        def move(target: Callable[[], int]) -> Callable[[], None]:
            return lambda: self.select(target())

        for key in ("up", "k"):
            bind(key, move(lambda: self.index - 1))
        for key in ("down", "j"):
            bind(key, move(lambda: self.index + 1))
        for key in ("home", "g"):
            bind(key, move(lambda: 0))
        for key in ("end", "G"):
            bind(key, move(lambda: self.count - 1))
        for key in ("pagedown", " "):
            bind(key, lambda: self.scroll(1.0))
        bind("pageup", lambda: self.scroll(-1.0))
        for key in ("v", "enter"):
            bind(key, lambda: self.show("content"))
        bind("d", lambda: self.show("current"))
        bind("p", lambda: self.show("previous"))
        bind("r", lambda: self._guard(self.restore))
        bind("s", lambda: self._guard(self.save))
        return kb

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.app.run()
        finally:
            self._closed = True
            self._stop.set()
            self.wait_for_hashes(5.0)


def run_history_browser(
    repo: Repository,
    history: PathHistory,
    *,
    input: Input | None = None,
    output: Output | None = None,
) -> None:
    """Browse ``history`` (from :func:`vsync.ops.versions.load_history`) until the user quits."""
    HistoryBrowser(repo, history, input=input, output=output).run()
