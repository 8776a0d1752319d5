"""Text from elsewhere made safe to show on a terminal: the one place it is escaped.

File names, commit messages, hosts and a peer's error text are data: a name
like ``"\\x1b]0;pwned\\x07"`` or a message holding ``"\\x1b[2J"`` must not
rewrite the user's terminal, and a name holding U+202E must not pass for
another name. Everything vsync prints that it did not write itself goes
through one of these functions, at the point of output (the CLI, and the
prompt-toolkit views through :func:`safe_fragments`); what is stored is
never changed.

*Unsafe* characters: C0 controls (U+0000-U+001F), DEL (U+007F), C1 controls
(U+0080-U+009F), the bidirectional controls U+061C, U+200E, U+200F,
U+202A-U+202E and U+2066-U+2069, and lone surrogates (bytes of a name that
are not UTF-8). Each is written as git writes it: ``\\a \\b \\t \\n \\v \\f \\r``,
else a backslash and three octal digits per UTF-8 byte (ESC is ``\\033``,
U+202E is ``\\342\\200\\256``).

- :func:`quote_path`: a path with an unsafe character, ``"`` or ``\\`` is
  put in double quotes with C escapes, as git's ``core.quotePath`` does
  (``"\\033]0;pwned\\007"``, ``"say \\"hi\\""``); any other path is printed
  as it is (UTF-8 names stay readable). Unambiguous: porcelain output uses it.
- :func:`escape_text`: commit messages and other free text: unsafe
  characters escaped, except newline and tab where a multi-line text keeps
  them; a backslash is left alone (so ``\\033`` in a message is ambiguous,
  which is acceptable for text shown to a person).
- :func:`one_line`: diagnostics and a peer's words (error lines, warnings):
  every character that is not printable (``str.isprintable``, space apart)
  is escaped, newlines and tabs included, so the text stays on one line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # prompt-toolkit is loaded only by the views that use it
    from prompt_toolkit.formatted_text import StyleAndTextTuples

C_ESCAPES = {"\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r"}
_UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
_QUOTE_RE = re.compile(f'[{_UNSAFE}"\\\\]')


def _octal(ch: str) -> str:
    try:
        raw = ch.encode("utf-8", "surrogateescape")  # a byte of a non-UTF-8 name: itself
    except UnicodeEncodeError:
        raw = ch.encode("utf-8", "surrogatepass")
    return "".join(f"\\{b:03o}" for b in raw)


def _escape(ch: str) -> str:
    letter = C_ESCAPES.get(ch)
    return "\\" + letter if letter else _octal(ch)


def _escape_match(m: re.Match[str]) -> str:
    ch = m.group()
    return "\\" + ch if ch in '"\\' else _escape(ch)


def quote_path(path: str) -> str:
    """``path`` as it is, or double-quoted with C escapes when it needs it (as git)."""
    if not _QUOTE_RE.search(path):
        return path
    return '"' + _QUOTE_RE.sub(_escape_match, path) + '"'


def escape_text(text: str, keep: str = "\n\t") -> str:
    """``text`` with every unsafe character escaped, except those in ``keep``."""
    if not _UNSAFE_RE.search(text):
        return text
    return _UNSAFE_RE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)


def one_line(text: str) -> str:
    """``text`` on one line with every non-printable character escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def safe_fragments(fragments: StyleAndTextTuples) -> StyleAndTextTuples:
    """prompt-toolkit formatted text with :func:`escape_text` applied to every text."""
    return [(f[0], escape_text(f[1]), *f[2:]) for f in fragments]
