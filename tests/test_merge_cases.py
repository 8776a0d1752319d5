"""The table of merge cases: one folder per case under ``tests/merge_cases/``.

A case folder holds the trees ``base/``, ``ours/``, ``theirs/`` and
``expected/`` as real files (a missing folder is an empty tree), plus
``case.json``:

- ``description``: what the case shows;
- ``conflicts``: ``{path: {"kind": ..., "code": ...}}``, the conflicts the
  merge must report (empty: a clean merge);
- ``symlinks``: ``{side: {path: target}}`` and ``exec``: ``{side: [path]}``
  for what data folders cannot hold portably (side is base, ours, theirs,
  expected, a1 or b1);
- ``history``: ``"criss-cross"`` (extra trees ``a1/`` and ``b1/``: ours merges
  b1 into a1, theirs merges a1 into b1), ``"unrelated"`` (ours and theirs
  are root commits; no base) or absent (ours and theirs on top of base).

In expected names and content, ``@OURS@`` / ``@THEIRS@`` stand for
``<host>-<yyyymmdd-hhmmss>`` of that side's commit, ``@OURS10@`` /
``@THEIRS10@`` for its first ten hex digits and ``@BASELABEL@`` for the base
marker label. Adding a case means adding a folder.

Each case builds a real repository with real commits (hosts ``ourhost`` and
``theirhost``), plans and applies the merge, and checks the folder against
``expected/`` and the conflicts against ``case.json``. A clean merge is then
committed with two parents and the folder must equal that commit; a
conflicted one is aborted and the folder must equal ours again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from merge_repo import History, Spec, folder_spec, spec_from_folder

from vsync.model.folder_snapshot import read_working
from vsync.model.ingest import Ingester
from vsync.ops.merge import (
    ACTION_KINDS,
    CONFLICT_KINDS,
    MergeState,
    abort,
    merge_bases,
    status_codes,
)
from vsync.ops.merge.naming import conflict_copy_name, stamp_of

CASES_DIR = Path(__file__).parent / "merge_cases"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())


def side_spec(case: Path, meta: dict, side: str) -> Spec:
    spec = spec_from_folder(case / side)
    for path, target in meta.get("symlinks", {}).get(side, {}).items():
        spec[path] = ("link", target, False)
    for path in meta.get("exec", {}).get(side, []):
        kind, content, _exe = spec[path]
        spec[path] = (kind, content, True)
    return spec


def substitute(spec: Spec, tokens: dict[str, str]) -> Spec:
    def sub(text: str) -> str:
        for k, v in tokens.items():
            text = text.replace(k, v)
        return text

    out: Spec = {}
    for path, (kind, content, exe) in spec.items():
        if isinstance(content, bytes):
            content = sub(content.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        else:
            content = sub(content)
        out[sub(path)] = (kind, content, exe)
    return out


def build(h: History, case: Path, meta: dict) -> tuple[bytes, bytes, str]:
    """Commit the case's history; returns (ours, theirs, base label); the folder holds ours."""
    spec = {side: side_spec(case, meta, side) for side in ("base", "ours", "theirs", "a1", "b1")}
    history = meta.get("history")
    if history == "unrelated":
        theirs = h.commit(spec["theirs"], [], "theirhost")
        ours = h.commit(spec["ours"], [], "ourhost")
        label = "base (none)"
    elif history == "criss-cross":
        base = h.commit(spec["base"], [], "basehost")
        a1 = h.commit(spec["a1"], [base], "ourhost")
        b1 = h.commit(spec["b1"], [base], "theirhost")
        theirs = h.commit(spec["theirs"], [b1, a1], "theirhost", "merge a1 into b1")
        ours = h.commit(spec["ours"], [a1, b1], "ourhost", "merge b1 into a1")
        first, second = sorted([a1, b1], key=lambda c: (h.repo.gitdb.commit(c).commit_time, c))
        label = f"base (virtual {first.decode()[:10]}+{second.decode()[:10]})"
    else:
        assert history is None, history
        base = h.commit(spec["base"], [], "basehost")
        theirs = h.commit(spec["theirs"], [base], "theirhost")
        ours = h.commit(spec["ours"], [base], "ourhost")
        label = f"base ({base.decode()[:10]})"
    assert folder_spec(h.root) == spec["ours"]
    return ours, theirs, label


def test_case_table_is_well_formed() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        meta = json.loads((case / "case.json").read_text())
        assert meta["description"]
        for c in meta["conflicts"].values():
            assert c["kind"] in CONFLICT_KINDS


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_merge_case(case: Path, tmp_path: Path) -> None:
    meta = json.loads((case / "case.json").read_text())
    h = History(tmp_path / "work")
    try:
        ours, theirs, base_label = build(h, case, meta)
        plan, outcome = h.merge(theirs)
        labels = plan.labels
        assert labels.base == base_label
        tokens = {
            "@OURS10@": ours.decode()[:10],
            "@THEIRS10@": theirs.decode()[:10],
            "@OURS@": f"ourhost-{labels.ours.stamp}",
            "@THEIRS@": f"theirhost-{labels.theirs.stamp}",
            "@BASELABEL@": labels.base,
        }
        expected = substitute(side_spec(case, meta, "expected"), tokens)
        assert folder_spec(h.root) == expected

        got = {c.path: {"kind": c.kind, "code": c.code} for c in plan.conflicts}
        assert got == meta["conflicts"]
        assert outcome.conflicts == sorted(meta["conflicts"])
        for action in plan.actions:
            assert action.kind in ACTION_KINDS and action.reason, action
        state = MergeState.load(h.repo)
        assert state is not None
        assert status_codes(state) == [(c["code"], p) for p, c in sorted(meta["conflicts"].items())]

        if plan.clean:
            merge_id = h.commit_merge(plan)
            commit = h.repo.gitdb.commit(merge_id)
            assert commit.parents == (ours, theirs)
            params = h.repo.config.chunker_params()
            with Ingester(params, h.repo.config.compression_level()) as ingester:
                working = read_working(h.repo, ingester, h.warnings.append)
            assert working.flat == h.flat(merge_id)
            assert MergeState.load(h.repo) is None
        else:
            abort(h.repo)
            assert folder_spec(h.root) == side_spec(case, meta, "ours")
            assert MergeState.load(h.repo) is None
            assert h.repo.head() == ours
    finally:
        h.close()


def test_merge_bases_of_history_shapes(tmp_path: Path) -> None:
    h = History(tmp_path / "work")
    try:
        f = {"f": ("file", b"x\n", False)}
        root = h.commit(f, [], "h")
        a1 = h.commit({"f": ("file", b"a\n", False)}, [root], "h")
        b1 = h.commit({"f": ("file", b"b\n", False)}, [root], "h")
        a2 = h.commit({"f": ("file", b"a2\n", False)}, [a1, b1], "h")
        b2 = h.commit({"f": ("file", b"b2\n", False)}, [b1, a1], "h")
        other = h.commit({"g": ("file", b"g\n", False)}, [], "h")
        assert merge_bases(h.repo, a1, b1) == [root]
        assert merge_bases(h.repo, a2, a1) == [a1]  # theirs is behind: the base is theirs
        assert sorted(merge_bases(h.repo, a2, b2)) == sorted([a1, b1])  # criss-cross
        assert merge_bases(h.repo, a2, other) == []  # unrelated
    finally:
        h.close()


def test_conflict_copy_names() -> None:
    taken = {"pics/cat.conflict-laptop-20240501-093000.jpg"}
    name = conflict_copy_name
    stamp = "20240501-093000"
    assert name("pics/cat.jpg", "laptop", stamp, taken.__contains__) == (
        "pics/cat.conflict-laptop-20240501-093000-2.jpg"
    )
    assert name("a.tar.gz", "laptop", stamp, set().__contains__) == (
        "a.tar.conflict-laptop-20240501-093000.gz"
    )
    assert name("Makefile", "my host/x", stamp, set().__contains__) == (
        "Makefile.conflict-my-host-x-20240501-093000"
    )
    assert name(".bashrc", "..", stamp, set().__contains__) == (
        ".bashrc.conflict-unknown-20240501-093000"
    )
    long = name("é" * 200 + ".txt", "h", stamp, set().__contains__)
    assert len(long.encode()) <= 255 and long.endswith(".conflict-h-20240501-093000.txt")
    assert stamp_of(1714555800, 2 * 3600) == "20240501-113000"
