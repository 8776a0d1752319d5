"""The benchmark harness tells the whole truth (issue 17).

- docs/benchmarks.md's summary is from one full run only: a run of some groups
  leaves it as it is, a full run writes it from its own targets alone (no row of an
  earlier table survives), and every section a run writes names that run;
- no hand-written figure: every section of docs/benchmarks.md is one the bench code
  writes, but the one hand-written section, which carries no measured figure;
- the mixed folder (scenario n) is the same from the same seed, its edit leaves the
  original untouched, and ``relink`` turns one folder into the other.

The bench modules are plain scripts in bench/ (not a package): imported from there.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

import datagen  # noqa: E402
import report  # noqa: E402
import run as bench_run  # noqa: E402
from measure import Target  # noqa: E402

OLD_DOC = """# Benchmarks

## Summary

| scenario | measure | value | target | result | measured |
|---|---|---:|---|---|---|
| a. old scenario | old measure | 9.99 | <= 1 | missed by 9.99x | 2026-01-01 00:00, 0000000 |

## Commit throughput (issue 2)

Measured long ago.

| tool | time |
|---|---:|
| vsync | 1.00 s |
"""


@pytest.fixture
def doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docs/benchmarks.md of its own, and results under tmp_path."""
    path = tmp_path / "benchmarks.md"
    path.write_text(OLD_DOC, encoding="utf-8")
    monkeypatch.setattr(report, "DOC", path)
    monkeypatch.setattr(report, "RUN_LINE", None)
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bench_run, "DOCS", True)
    (tmp_path / "results").mkdir()
    return path


def sections(text: str) -> dict[str, str]:
    _intro, parts = report.split_sections(text)
    return dict(parts)


TARGETS = {
    "push": [Target("g. initial push over SSH", "vsync push time / rsync time", "0.80", "<= 1",
                    "met")],
    "mixed": [Target("n. mixed folder", "vsync peak RSS, any command", "90.0 MiB",
                     "< 150.0 MiB", "met")],
}  # fmt: skip


def test_a_run_of_some_groups_leaves_the_summary_as_it_is(doc: Path) -> None:
    before = sections(doc.read_text(encoding="utf-8"))["## Summary"]
    bench_run.finish(TARGETS, False, "bench/run.py --only push", False, "now", "load 0")
    assert sections(doc.read_text(encoding="utf-8"))["## Summary"] == before
    saved = (doc.parent / "results" / "targets.json").read_text(encoding="utf-8")
    assert '"full": false' in saved and "old scenario" not in saved


def test_a_full_run_names_the_groups_that_failed_in_it(doc: Path) -> None:
    """A group whose peer or server failed does not end the run: the summary says which
    failed and why, and holds the others' targets."""
    failed = {"s3": "SystemExit: restic backup failed: internal error"}
    bench_run.finish(TARGETS, False, "make bench", True, "now", "load 0", failed)
    summary = " ".join(sections(doc.read_text(encoding="utf-8"))["## Summary"].split())
    assert "Groups that failed in this run" in summary
    assert "s3 (SystemExit: restic backup failed: internal error)" in summary
    assert "| g. initial push over SSH |" in summary


def test_one_failing_group_does_not_end_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/run.py goes on after a group raises (here the edit group), and exits 1."""
    import edit_commit

    def broken(quick: bool) -> object:
        raise SystemExit("the peer failed")

    ran: list[str] = []
    monkeypatch.setattr(edit_commit, "main", broken)
    monkeypatch.setattr(bench_run, "finish", lambda *args: ran.append(repr(args[-1])))
    assert bench_run.main(["--only", "edit", "--no-docs"]) == 1
    assert ran == [repr({"edit": "SystemExit: the peer failed"})]


def test_a_full_run_writes_the_summary_from_its_own_targets_alone(doc: Path) -> None:
    bench_run.finish(TARGETS, False, "make bench", True, "2026-12-07 02:00 UTC", "load 0.5")
    summary = sections(doc.read_text(encoding="utf-8"))["## Summary"]
    assert "old scenario" not in summary, "a row of an earlier run survived"
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert rows[0] == "| scenario | measure | value | target | result |"
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| g. initial push over SSH",
                                                     "| n. mixed folder"]  # fmt: skip
    # the run is named once, at the head: command, commit, start, machine, load
    head = " ".join(summary.split("| scenario")[0].split())
    assert "`make bench` at commit " in head and "2026-12-07 02:00 UTC" in head
    assert "load 0.5" in head and "2 of 2 targets met" in head
    assert summary.count("at commit ") == 1
    # the other sections are untouched by the summary
    assert "Measured long ago." in doc.read_text(encoding="utf-8")


def test_every_section_a_run_writes_names_that_run(doc: Path) -> None:
    report.RUN_LINE = bench_run.run_line("bench/run.py --only commit", False)
    body = "## Commit throughput (issue 2)\n\nMeasured now.\n\n| tool | time |\n"
    report.write_section("## Commit throughput (issue 2)", body)
    section = sections(doc.read_text(encoding="utf-8"))["## Commit throughput (issue 2)"]
    assert section.split("\n")[2].startswith("Run: `bench/run.py --only commit` at commit ")
    assert "a run of this group alone" in section and "Measured now." in section
    # written again by a later run: one run line, the later one
    report.RUN_LINE = bench_run.run_line("make bench", True)
    report.write_section("## Commit throughput (issue 2)", section)
    section = sections(doc.read_text(encoding="utf-8"))["## Commit throughput (issue 2)"]
    assert section.count("Run: ") == 1 and "Run: `make bench` at commit " in section
    # the summary says which run it is in its own words, never under a run line
    bench_run.finish(TARGETS, False, "make bench", True, "now", "load 0")
    assert "Run: " not in sections(doc.read_text(encoding="utf-8"))["## Summary"]


# A measured figure: a decimal, a time, a rate or a ratio. Whole sizes such as "4 MiB
# blocks" or "128 KiB chunks" are parameters of the method, not measurements.
FIGURE = re.compile(r"\d+\.\d+|\d[\d,]*\s*(?:s|ms|µs|x|[KMG]i?B/s)(?![\w/])")


def test_benchmarks_md_has_no_hand_written_figures() -> None:
    """Each section is written by the bench code (its heading is in a bench module), but
    the hand-written one, whose prose holds no measured figure."""
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    code = "\n".join(p.read_text(encoding="utf-8") for p in BENCH.glob("*.py"))
    for heading, body in report.split_sections(text)[1]:
        if heading.startswith(report.LAST):
            found = FIGURE.findall(body)
            assert not found, f"figures written by hand in {heading!r}: {found}"
        else:
            assert heading.removeprefix("## ") in code, f"no bench code writes {heading!r}"
    summary = sections(text).get("## Summary", "")
    assert "| measured |" not in summary, "the summary mixes rows of several runs"


# -- the mixed folder ------------------------------------------------------------------

KIB = 1024
TINY = datagen.MixedSpec(
    photos=6, photo_min=4 * KIB, photo_max=12 * KIB, large=2, large_size=64 * KIB,
    logs=2, log_min=2 * KIB, log_max=8 * KIB, sources=12,
    small=40, small_min=1 * KIB, small_max=4 * KIB,
)  # fmt: skip


def digest(root: Path) -> str:
    h = hashlib.blake2b()
    for path in datagen.tree_files(root):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_the_mixed_folder_is_the_same_from_the_same_seed(tmp_path: Path) -> None:
    a = datagen.mixed_folder(3, tmp_path / "a", TINY)
    b = datagen.mixed_folder(3, tmp_path / "b", TINY)
    c = datagen.mixed_folder(4, tmp_path / "c", TINY)
    assert digest(a) == digest(b) != digest(c)
    tops = {p.relative_to(a).parts[0] for p in datagen.tree_files(a)}
    assert tops == set(datagen.MIXED_KINDS)
    assert len(datagen.tree_files(a)) == 6 + 2 + 2 + 12 + 40
    assert not (tmp_path / "a.tmp").exists()


def test_the_edit_adds_modifies_and_removes_and_leaves_the_original(tmp_path: Path) -> None:
    a = datagen.mixed_folder(3, tmp_path / "a", TINY)
    before = digest(a)
    e = datagen.mixed_edit(a, tmp_path / "e", 9, TINY)
    again = datagen.mixed_edit(a, tmp_path / "e2", 9, TINY)
    assert digest(a) == before, "the edit changed the original folder's files"
    assert digest(e) == digest(again)
    added, modified, removed = datagen.tree_diff(a, e)
    assert added and modified and removed
    kinds = {p.split("/")[0] for p in modified}
    assert {"Photos", "Large", "logs", "code"} <= kinds
    for rel in modified:
        assert (a / rel).read_bytes() != (e / rel).read_bytes(), rel
    for path in datagen.tree_files(e):
        rel = str(path.relative_to(e))
        if rel not in added and rel not in modified:
            assert os.stat(path).st_ino == os.stat(a / rel).st_ino, rel


def test_relink_turns_one_folder_into_the_other(tmp_path: Path) -> None:
    a = datagen.mixed_folder(3, tmp_path / "a", TINY)
    e = datagen.mixed_edit(a, tmp_path / "e", 9, TINY)
    work = tmp_path / "work"
    datagen.link_tree(a, work)
    kept = {str(p.relative_to(work)): os.stat(p).st_ino for p in datagen.tree_files(work)}
    datagen.relink(work, e)
    assert digest(work) == digest(e)
    added, modified, _removed = datagen.tree_diff(a, e)
    for path in datagen.tree_files(work):
        rel = str(path.relative_to(work))
        if rel not in added and rel not in modified:
            assert os.stat(path).st_ino == kept[rel], f"{rel} was replaced though unchanged"
    assert digest(a) == digest(datagen.mixed_folder(3, tmp_path / "a2", TINY))
