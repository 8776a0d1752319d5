"""Names that cannot exist on Windows or macOS: status and commit warn (one line per new
path), ``portability.strict = true`` makes commit refuse (exit 2, nothing written), and a
clean status never looks (vsync/model/portability.py)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from conftest import run_vsync

from vsync.model.portability import case_twins, name_problem, problems


@pytest.mark.parametrize(
    "name",
    ["CON", "prn", "Aux", "nul", "COM1", "lpt9", "aux.txt", "con.tar.gz", "NUL ", "com3 .log"],
)
def test_reserved_device_names(name: str) -> None:
    why = name_problem(name)
    assert why is not None


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("a<b", "'<'"),
        ("a>b", "'>'"),
        ("a:b", "':'"),
        ('a"b', "'\"'"),
        ("a|b", "'|'"),
        ("a?b", "'?'"),
        ("a*b", "'*'"),
        ("a\\b", "'\\'"),
        ("a\x01b", "U+0001"),
        ("a\x1fb", "U+001F"),
        ("ends.", "dot or a space"),
        ("ends ", "dot or a space"),
    ],
)
def test_forbidden_characters_and_endings(name: str, word: str) -> None:
    why = name_problem(name)
    assert why is not None and word in why


@pytest.mark.parametrize(
    "name", ["notes.md", "console", "COM0", "com10", "lpt", "auxiliary.txt", "a.b.c", ".hidden"]
)
def test_portable_names(name: str) -> None:
    assert name_problem(name) is None


def test_case_twins_by_name_and_by_folder() -> None:
    assert case_twins(["A.txt", "a.txt", "b.txt"]) == {"a.txt": ("A.txt", "A.txt")}
    assert case_twins(["Docs/x", "docs/y"]) == {"docs/y": ("Docs", "Docs/x")}
    assert case_twins(["docs/x", "docs/y", "\u00c9t\u00e9", "\u00e9t\u00e9"]) == {
        "\u00e9t\u00e9": ("\u00c9t\u00e9", "\u00c9t\u00e9")
    }


def test_problems_only_for_new_paths() -> None:
    old = {"CON", "Readme", "ok.txt"}

    def problems_of(*new: str) -> dict[str, str]:
        return dict(problems([*old, *new], lambda p: p not in old))

    assert problems_of() == {}
    assert problems_of("new/aux.c") == {
        "new/aux.c": "is a reserved name on Windows (AUX, with any extension)"
    }
    found = problems_of("README", "bad./x")
    assert set(found) == {"README", "bad./x"}
    assert "only by case" in found["README"] and "'Readme'" in found["README"]
    assert found["bad./x"].startswith("is in 'bad.', which ends in a dot")
    # a new file in a folder that an old folder's name differs from only by case
    assert list(problems(["docs/old", "Docs/new"], lambda p: p == "Docs/new")) == [
        (
            "Docs/new",
            "differs from 'docs/old' only by case"
            " (one file on Windows and macOS; a push is refused)",
        )
    ]
    # a folder and a file that differ only by case
    assert [p for p, _ in problems(["Notes", "notes/a"], lambda p: p == "notes/a")] == ["notes/a"]


@pytest.mark.parametrize(
    "path",
    ["x/con", "x/CON.txt", "lpt1 .md/y", "a?", "a\x01b", "trail./f", "f ", 'q"', "x/com9"],
)
def test_the_first_look_finds_every_kind_of_name(path: str) -> None:
    quiet = [f"d{i}/f{i}.txt" for i in range(50)]
    assert [p for p, _ in problems([*quiet, path], lambda p: True)] == [path]


@pytest.mark.parametrize("path", ["console", "com10/x", "x/lpt", "auxiliary.txt", "con_x"])
def test_the_first_look_passes_portable_names(path: str) -> None:
    assert problems([path, "other"], lambda p: True) == []


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vsync: warning: ")]


def test_status_and_commit_warn_once_per_path(work: Path) -> None:
    (work / "ok.txt").write_text("fine\n")
    run_vsync("commit", "-m", "base", cwd=work)
    (work / "aux.txt").write_text("1\n")
    (work / "OK.txt").write_text("2\n")
    (work / "what?").write_text("3\n")
    status = run_vsync("status", cwd=work)
    assert _warnings(status.stderr) == [
        "vsync: warning: 'OK.txt' differs from 'ok.txt' only by case"
        " (one file on Windows and macOS; a push is refused)",
        "vsync: warning: 'aux.txt' is a reserved name on Windows (AUX, with any extension)",
        "vsync: warning: 'what?' holds '?', which Windows forbids in names",
    ]
    committed = run_vsync("commit", "-m", "three", cwd=work)
    assert _warnings(committed.stderr) == _warnings(status.stderr)
    # Committed: no longer new, so neither status nor the next commit speaks of them.
    again = run_vsync("status", cwd=work)
    assert again.stderr == "" and "clean" in again.stdout
    (work / "fine.txt").write_text("4\n")
    assert run_vsync("commit", "-m", "four", cwd=work).stderr == ""


def test_a_commit_after_a_commit_looks_at_new_paths_beside_the_kept_names(work: Path) -> None:
    """A commit whose stat cache is the branch's tree (no status in between) checks only
    the paths new to it, each against the names its folder keeps: a new name's case twin
    among unchanged files and folders is still found, and a name whose twin is gone from
    the folder is not one."""
    (work / "README.md").write_text("r\n")
    (work / "docs").mkdir()
    (work / "docs" / "a.txt").write_text("a\n")
    run_vsync("commit", "-m", "base", cwd=work)
    (work / "readme.md").write_text("r2\n")
    (work / "DOCS").mkdir()
    (work / "DOCS" / "b.txt").write_text("b\n")
    (work / "aux.txt").write_text("x\n")
    committed = run_vsync("commit", "-m", "new names", cwd=work)
    assert _warnings(committed.stderr) == [
        "vsync: warning: 'DOCS/b.txt' differs from 'docs' only by case"
        " (one file on Windows and macOS; a push is refused)",
        "vsync: warning: 'aux.txt' is a reserved name on Windows (AUX, with any extension)",
        "vsync: warning: 'readme.md' differs from 'README.md' only by case"
        " (one file on Windows and macOS; a push is refused)",
    ]
    for folder in ("docs", "DOCS"):
        for child in (work / folder).iterdir():
            child.unlink()
        (work / folder).rmdir()
    (work / "dOcs").mkdir()
    (work / "dOcs" / "c.txt").write_text("c\n")
    assert run_vsync("commit", "-m", "twins gone", cwd=work).stderr == ""


def test_strict_makes_commit_refuse(work: Path) -> None:
    (work / "ok.txt").write_text("fine\n")
    run_vsync("commit", "-m", "base", cwd=work)
    config = work / ".vsync" / "config"
    config.write_text(config.read_text() + "[portability]\n\tstrict = true\n")
    head = run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout
    nfd = unicodedata.normalize("NFD", "caf\u00e9 ")
    (work / nfd).write_text("x\n")
    (work / "b.txt").write_text("y\n")
    refused = run_vsync("commit", "-m", "no", cwd=work, check=False)
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert "'caf\u00e9 ' ends in a dot or a space" in lines[0]
    assert "portability.strict" in lines[0]
    assert run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout == head  # not moved
    (work / nfd).rename(work / "cafe")
    assert run_vsync("commit", "-m", "yes", cwd=work).stderr == ""
    config.write_text(config.read_text().replace("strict = true", "strict = maybe"))
    bad = run_vsync("commit", "-m", "x", cwd=work, check=False)
    assert bad.returncode == 2 and "portability.strict must be true or false" in bad.stderr


# -- checking out case twins on a file system that folds case ---------------------------


def test_the_probe_sees_that_linux_does_not_fold_case(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsync.ops.case_fold import ASSUME_ENV, folds_case

    monkeypatch.delenv(ASSUME_ENV, raising=False)
    assert not folds_case(work)
    (work / ".VSYNC").mkdir()  # another folder: still two names
    assert not folds_case(work)
    monkeypatch.setenv(ASSUME_ENV, "1")
    assert folds_case(work)


def test_keep_case_twins_moves_the_later_file_of_each_pair() -> None:
    from vsync.ops.case_fold import keep_case_twins

    entry = (0o100644, b"0" * 40)
    target = {"A.txt": entry, "a.txt": entry, "Docs/x": entry, "docs/y": entry, "b": entry}
    said: list[str] = []
    kept, moved = keep_case_twins(target, "lap top", said.append)
    assert list(moved) == ["a.txt"]
    copy = moved["a.txt"]
    assert copy.startswith("a.conflict-lap-top-") and copy.endswith(".txt")
    assert set(kept) == {"A.txt", copy, "Docs/x", "docs/y", "b"}  # folders are not moved
    assert said == [
        f"'a.txt' and 'A.txt' are one name on this file system (it folds case): "
        f"'a.txt' was written as '{copy}'"
    ]


def test_checkout_on_a_case_folding_folder_keeps_both_and_says_so(work: Path) -> None:
    (work / "Notes.txt").write_text("capital\n")
    (work / "notes.txt").write_text("small\n")
    run_vsync("commit", "-m", "twins", cwd=work)
    (work / "Notes.txt").unlink()
    (work / "notes.txt").unlink()
    out = run_vsync("checkout", "HEAD", cwd=work, env={"VSYNC_ASSUME_CASE_FOLDING": "1"})
    copies = list(work.glob("notes.conflict-testhost-*.txt"))
    assert len(copies) == 1 and copies[0].read_text() == "small\n"
    assert (work / "Notes.txt").read_text() == "capital\n"
    assert not (work / "notes.txt").exists()
    warned = [line for line in out.stderr.splitlines() if "folds case" in line]
    assert warned == [
        f"vsync: warning: 'notes.txt' and 'Notes.txt' are one name on this file system "
        f"(it folds case): 'notes.txt' was written as '{copies[0].name}'"
    ]


def test_nfc_and_nfd_twins_are_named_as_such(work: Path) -> None:
    (work / unicodedata.normalize("NFC", "caf\u00e9.txt")).write_text("composed\n")
    (work / unicodedata.normalize("NFD", "caf\u00e9.txt")).write_text("decomposed\n")
    said = (
        "vsync: warning: skipping a second 'caf\u00e9.txt': two names in its folder are the "
        "same text in different Unicode forms (NFC and NFD), one name for vsync and on "
        "macOS; rename one of them"
    )
    assert run_vsync("status", cwd=work).stderr.splitlines() == [said]
    assert run_vsync("commit", "-m", "one of them", cwd=work).stderr.splitlines() == [said]


def test_strict_refuses_unicode_twins_one_line_per_path(work: Path) -> None:
    """Under portability.strict a name spelled twice (NFC and NFD) stops the commit
    instead of being skipped, even when nothing else changed; status reports it in both
    modes; with several problems the refusal says each, one line per path."""
    composed = unicodedata.normalize("NFC", "caf\u00e9.txt")
    (work / composed).write_text("composed\n")
    run_vsync("commit", "-m", "base", cwd=work)
    head = run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout
    config = work / ".vsync" / "config"
    config.write_text(config.read_text() + "[portability]\n\tstrict = true\n")
    (work / unicodedata.normalize("NFD", "caf\u00e9.txt")).write_text("decomposed\n")
    skipped = f"vsync: warning: skipping a second '{composed}': two names in its folder"
    status = run_vsync("status", cwd=work)
    assert len(status.stderr.splitlines()) == 1 and status.stderr.startswith(skipped)
    twice = (
        f"vsync: error: '{composed}' is spelled twice in its folder, in different Unicode "
        "forms (NFC and NFD), one name on macOS; rename it, or set portability.strict = "
        "false to commit it"
    )
    refused = run_vsync("commit", "-m", "no", cwd=work, check=False)
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert refused.stderr.splitlines() == [twice]
    assert run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout == head
    # with another problem and another change: one line per path, in path order
    (work / "aux.txt").write_text("1\n")
    (work / "plain.txt").write_text("2\n")
    refused = run_vsync("commit", "-m", "no", cwd=work, check=False)
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert refused.stderr.splitlines() == [
        "vsync: error: 'aux.txt' is a reserved name on Windows (AUX, with any extension); "
        "rename it, or set portability.strict = false to commit it",
        twice,
    ]
    assert run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout == head
    # not strict: the second spelling is skipped with the warning, the rest committed
    config.write_text(config.read_text().replace("strict = true", "strict = false"))
    committed = run_vsync("commit", "-m", "skips one", cwd=work)
    assert any(line.startswith(skipped) for line in committed.stderr.splitlines())
    assert run_vsync("log", "-n", "1", "--oneline", cwd=work).stdout != head
    assert run_vsync("status", cwd=work).stderr.startswith(skipped)  # still reported
