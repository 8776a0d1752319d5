"""Properties of the merge, checked with hypothesis.

On the planner (a pure function of three flat maps and a content source;
here an in-memory one), for any base, X, ours and theirs:

- merge(base, X, base) == X and merge(base, base, X) == X, clean;
- merge(base, X, X) == X, clean;
- swapping ours and theirs gives the same merged result for every clean path
  and the same set of conflicted paths.

The generated trees mix text (lines from a small vocabulary, so edits on the
two sides sometimes overlap and sometimes do not), binaries, symlinks, exec
bits, renames and file/folder shape changes. A few end-to-end checks run the
same properties through real repositories.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from merge_repo import History, Spec

from vsync.model.folder_scan import MODE_EXEC, MODE_FILE, MODE_LINK
from vsync.model.snapshot import FlatMap
from vsync.ops.merge import Labels, MemoryContent, MergePlan, Side, abort, plan_merge

SLOTS = ["a.txt", "b.bin", "run", "d", "d/x.txt", "d/y", "e/f.txt", "moved.txt", "e/moved"]
LINES = [
    f"{w}\n"
    for w in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
]
BINARIES = [b"\0bin one", b"\0bin two", b"\0\0bin three"]
TARGETS = ["t1", "t2", "d/x.txt"]
OPS = ["keep", "keep", "delete", "new", "mode", "edit", "edit", "edit", "move"]

LABELS = Labels(
    Side("ours", b"1" * 40, "ourhost", "20240101-000000"),
    Side("theirs", b"2" * 40, "theirhost", "20240102-000000"),
    "base (3333333333)",
)

text_st = st.lists(st.sampled_from(LINES), min_size=2, max_size=9).map(
    lambda ls: "".join(ls).encode()
)
content_st = st.one_of(text_st, text_st, st.sampled_from(BINARIES))
entry_st = st.one_of(
    st.tuples(st.just("file"), content_st, st.booleans()),
    st.tuples(st.just("link"), st.sampled_from(TARGETS), st.just(False)),
)


def valid(draw: st.DrawFn, spec: Spec) -> Spec:
    """Make a spec a tree: a path cannot be a file and a folder at once."""
    for folder in ("d", "e"):
        if folder in spec and any(p.startswith(folder + "/") for p in spec):
            if draw(st.booleans()):
                del spec[folder]
            else:
                for p in [p for p in spec if p.startswith(folder + "/")]:
                    del spec[p]
    return dict(sorted(spec.items()))


@st.composite
def base_spec(draw: st.DrawFn) -> Spec:
    spec: Spec = {}
    for slot in SLOTS[:7]:
        if draw(st.booleans()):
            spec[slot] = draw(entry_st)
    return valid(draw, spec)


def edit_lines(draw: st.DrawFn, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        new = draw(st.sampled_from(LINES)).encode()
        if op == "insert" or i == len(lines):
            lines.insert(i, new)
        elif op == "replace":
            lines[i] = new
        else:
            del lines[i]
    return b"".join(lines)


@st.composite
def mutated(draw: st.DrawFn, base: Spec) -> Spec:
    out: Spec = dict(base)
    for slot in SLOTS:
        cur = out.get(slot)
        op = draw(st.sampled_from(OPS))
        if op == "delete":
            out.pop(slot, None)
        elif op == "new":
            out[slot] = draw(entry_st)
        elif op == "mode" and cur is not None and cur[0] == "file":
            out[slot] = (cur[0], cur[1], not cur[2])
        elif op == "edit" and cur is not None and cur[0] == "file" and b"\0" not in cur[1]:
            assert isinstance(cur[1], bytes)
            out[slot] = ("file", edit_lines(draw, cur[1]), cur[2])
        elif op == "move" and cur is not None:
            dest = draw(st.sampled_from(["moved.txt", "e/moved"]))
            if dest not in out:
                out[dest] = out.pop(slot)
    return valid(draw, out)


@st.composite
def three(draw: st.DrawFn) -> tuple[Spec, Spec, Spec]:
    base = draw(base_spec())
    return base, draw(mutated(base)), draw(mutated(base))


def to_flat(reader: MemoryContent, spec: Spec) -> FlatMap:
    out: FlatMap = {}
    for path, (kind, content, exe) in spec.items():
        data = content if isinstance(content, bytes) else content.encode()
        if kind == "link":
            out[path] = (MODE_LINK, reader.add(data))
        else:
            out[path] = (MODE_EXEC if exe else MODE_FILE, reader.add(data))
    return out


def plan3(base: Spec, ours: Spec, theirs: Spec) -> tuple[MergePlan, MergePlan, FlatMap, FlatMap]:
    reader = MemoryContent()
    b, o, t = to_flat(reader, base), to_flat(reader, ours), to_flat(reader, theirs)
    return plan_merge(b, o, t, reader, LABELS), plan_merge(b, t, o, reader, LABELS), o, t


def conflicted(plan: MergePlan) -> list[str]:
    return sorted(c.path for c in plan.conflicts)


PLANNER = settings(max_examples=30, deadline=None)


@PLANNER
@given(three())
def test_unchanged_theirs_gives_ours(sides: tuple[Spec, Spec, Spec]) -> None:
    base, x, _ = sides
    one_way, other_way, xs, _t = plan3(base, x, base)
    assert one_way.clean and one_way.merged == xs
    assert other_way.clean and other_way.merged == xs  # merge(base, base, X)
    assert all(a.result == xs.get(a.path) for a in one_way.actions)  # nothing to write


@PLANNER
@given(three())
def test_same_change_on_both_sides_gives_it(sides: tuple[Spec, Spec, Spec]) -> None:
    base, x, _ = sides
    plan, _swapped, xs, _t = plan3(base, x, x)
    assert plan.clean
    assert plan.merged == xs


@PLANNER
@given(three())
def test_swapping_sides_gives_the_same_result(sides: tuple[Spec, Spec, Spec]) -> None:
    base, ours, theirs = sides
    plan, swapped, _o, _t = plan3(base, ours, theirs)
    assert plan.merged == swapped.merged
    assert conflicted(plan) == conflicted(swapped)
    assert plan.clean == swapped.clean
    for c in plan.conflicts:
        other = next(s for s in swapped.conflicts if s.path == c.path)
        assert {c.kind, other.kind} <= {"modify-delete", "delete-modify"} or c.kind == other.kind


@PLANNER
@given(three())
def test_plan_is_a_valid_tree_and_sorted(sides: tuple[Spec, Spec, Spec]) -> None:
    plan, _swapped, _o, _t = plan3(*sides)
    target = plan.target()
    folders = {p.rsplit("/", 1)[0] for p in target if "/" in p}
    assert not folders & target.keys()
    paths = [a.path for a in plan.actions]
    assert paths == sorted(set(paths))


# -- end to end, through real repositories ------------------------------------------------

E2E = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _merged_tree(h: History, ours: bytes, theirs: bytes) -> tuple[bytes | None, list[str]]:
    plan, _outcome = h.merge(theirs)
    paths = conflicted(plan)
    if plan.clean:
        merge_id = h.commit_merge(plan)
        return h.repo.gitdb.commit(merge_id).tree, paths
    abort(h.repo)
    return None, paths


@E2E
@given(three())
@example(  # a file where a folder stood: abort must remove it before restoring the folder
    (
        {
            "a.txt": ("file", b"alpha\nalpha\nalpha\nalpha\nalpha\n", False),
            "d/x.txt": ("file", b"alpha\nalpha\n", False),
        },
        {"d": ("file", b"\x00bin one", False)},
        {
            "a.txt": ("file", b"alpha\nalpha\nalpha\nalpha\nalpha\n", True),
            "d/x.txt": ("file", b"alpha\nalpha\n", False),
        },
    )
)
def test_end_to_end_swap_and_identity(sides: tuple[Spec, Spec, Spec]) -> None:
    base, ours, theirs = sides
    with tempfile.TemporaryDirectory() as tmp:
        h = History(Path(tmp) / "work")
        try:
            b = h.commit(base, [], "basehost")
            t = h.commit(theirs, [b], "theirhost")
            o = h.commit(ours, [b], "ourhost")
            tree_a, conflicts_a = _merged_tree(h, o, t)
            h.checkout_commit(t, theirs)
            tree_b, conflicts_b = _merged_tree(h, t, o)
            assert conflicts_a == conflicts_b
            assert tree_a == tree_b
            # merge(base, X, base) == X: merging the base commit into ours changes nothing
            h.checkout_commit(o, ours)
            plan, outcome = h.merge(b)
            assert plan.clean and plan.merged == h.flat(o)
            assert not outcome.written and not outcome.removed
        finally:
            h.close()
