"""Counted nouns: one helper (vsync.wording), and no "(s)" left in what vsync prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import Run

from vsync.wording import plural, written_deleted

PACKAGE = Path(__file__).resolve().parent.parent / "vsync"


def test_plural_agrees_with_the_count() -> None:
    assert plural(0, "file") == "0 files"
    assert plural(1, "file") == "1 file"
    assert plural(2, "file") == "2 files"
    assert plural(1, "duplicate copy", "duplicate copies") == "1 duplicate copy"
    assert plural(3, "duplicate copy", "duplicate copies") == "3 duplicate copies"
    assert written_deleted(1, 0) == "1 file written, 0 deleted"
    assert written_deleted(2, 1) == "2 files written, 1 deleted"


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _const(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def test_no_message_leaves_the_number_of_a_noun_open() -> None:
    """'file(s)', 'conflict(s)' and hand-made ``'s' if n != 1`` endings use plural()."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for line, text in _strings(tree):
            if re.search(r"[a-z]\(s\)", text):
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.IfExp) and "s" in (_const(node.body), _const(node.orelse)):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: a hand-made plural")
    assert bad == [], "\n".join(bad)


def test_summaries_count_one_thing_in_the_singular(work: Path, vsync: Run) -> None:
    (work / "a.txt").write_text("one\n")
    out = vsync("commit", "-m", "first").stdout  # type: ignore[operator]
    assert out.splitlines()[1].startswith(" 1 file, 1 read, 1 new chunk (")
    (work / "a.txt").write_text("two\n")
    assert vsync("restore", "--force", "a.txt").stdout == "Restored 1 file\n"  # type: ignore[operator]
    fsck = vsync("fsck").stdout  # type: ignore[operator]
    assert re.fullmatch(r"fsck: checked 1 commit, 1 file, 1 chunk \(.+\): no problems\n", fsck)
