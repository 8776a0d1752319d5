"""Round trips: every committed version comes back byte for byte.

``restore(commit(tree)) == tree`` for hand-picked trees (large multi-chunk
files, empty files, exec bits, dangling symlinks, unicode and NFD names) and
for random histories (hypothesis). Versions come back two ways: ``vsync
restore . --source ID`` into an emptied folder, and ``vsync checkout ID``
straight from whatever the folder held before, without ``--force`` (every
file in the folder is then recorded in the repository, so nothing may be
refused). After a checkout the folder holds the target plus the untracked
files the checkout leaves alone: :func:`after_checkout` is that rule.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import unicodedata
from pathlib import Path

from conftest import clear_worktree, run_vsync, snapshot_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsync.model.repository import Repository

Entry = tuple[str, bytes | str, bool]  # as snapshot_tree: (kind, content or target, exec)
Tree = dict[str, Entry]

COMMIT_LINE = re.compile(r"^\[main ([0-9a-f]{10})\]", re.M)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def materialise(root: Path, tree: Tree) -> None:
    """Make the folder hold exactly ``tree`` (keys as they are to be named on disk)."""
    clear_worktree(root)
    for path, (kind, data, exec_bit) in tree.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            assert isinstance(data, str)
            os.symlink(data, full)
        else:
            assert isinstance(data, bytes)
            full.write_bytes(data)
            full.chmod(0o755 if exec_bit else 0o644)


def commit(root: Path, message: str, previous: str | None) -> str | None:
    out = run_vsync("commit", "-m", message, cwd=root).stdout
    m = COMMIT_LINE.search(out)
    if m is None:
        assert "nothing to commit" in out, out
        return previous
    return m.group(1)


def collides(path: str, other: str) -> bool:
    return path.startswith(other + "/") or other.startswith(path + "/")


def after_checkout(working: Tree, head: Tree, target: Tree, recorded: set[str]) -> Tree:
    """What the folder holds after ``checkout``: the target, plus untracked files
    (in neither HEAD nor the target) whose content is recorded nowhere and that
    are not in the target's way. ``recorded`` names the working paths whose
    content some commit holds."""
    out = dict(target)
    for path, entry in working.items():
        if path in target or path in head or path in recorded:
            continue
        if any(collides(path, t) for t in target):
            continue
        out[path] = entry
    return out


def nfc_keys(tree: Tree) -> Tree:
    return {nfc(p): e for p, e in tree.items()}


def check_checkout(root: Path, commit_id: str, head: Tree, target: Tree) -> None:
    working = nfc_keys(snapshot_tree(root))
    run_vsync("checkout", commit_id, cwd=root)
    # every file in the folder came from a commit here, so all of it is recorded
    assert snapshot_tree(root) == after_checkout(working, head, target, set(working))


def check_restore(root: Path, commit_id: str, target: Tree) -> None:
    clear_worktree(root)
    run_vsync("restore", ".", "--source", commit_id, cwd=root)
    assert snapshot_tree(root) == target


# -- hand-picked versions ---------------------------------------------------------------

NFD_NAME = unicodedata.normalize("NFD", "naïve-café.txt")


def handpicked_versions() -> list[Tree]:
    rng = random.Random(1234)
    big = rng.randbytes(3 * 1024 * 1024 + 777)  # several dozen chunks
    v1: Tree = {
        "readme.txt": ("file", b"hello\nworld\n", False),
        "empty": ("file", b"", False),
        "big/disk.img": ("file", big, False),
        "a/b/c/d/deep.txt": ("file", b"deep\n", False),
        "bin/tool.sh": ("file", b"#!/bin/sh\necho tool\n", True),
        "links/to-readme": ("link", "../readme.txt", False),
        "links/dangling": ("link", "does/not/exist", False),
        "links/to-folder": ("link", "../a/b", False),
        "unicode/日本語.txt": ("file", "こんにちは\n".encode(), False),
        f"unicode/{NFD_NAME}": ("file", b"written with an NFD name\n", False),
        "shape": ("file", b"a file that becomes a folder\n", False),
    }
    v2 = dict(v1)
    v2["big/disk.img"] = ("file", big[:1_500_000] + b"INSERTED" + big[1_500_000:], False)
    v2["empty"] = ("file", b"no longer empty\n", True)
    v2["bin/tool.sh"] = ("file", b"#!/bin/sh\necho tool\n", False)
    v2["links/dangling"] = ("link", "still/dangling/elsewhere", False)
    del v2["a/b/c/d/deep.txt"]
    del v2["links/to-folder"]
    del v2["shape"]
    v2["shape/inside.txt"] = ("file", b"now a folder\n", False)
    v2["shape/sub/empty"] = ("file", b"", False)
    v3: Tree = {
        "shape": ("file", b"a file again\n", True),
        "readme.txt": ("link", "shape", False),
        "big/disk.img": ("file", big[:70_000], False),
        "unicode/日本語.txt": ("file", b"", False),
    }
    v4: Tree = {"only/an/empty/file": ("file", b"", False)}
    return [v1, v2, v3, v4]


def test_handpicked_versions_round_trip(work: Path) -> None:
    ids: list[str] = []
    expected: list[Tree] = []
    for n, version in enumerate(handpicked_versions(), 1):
        materialise(work, version)
        committed = snapshot_tree(work)
        assert committed == version  # the tree on disk is what we meant
        cid = commit(work, f"version {n}", None)
        assert cid is not None
        ids.append(cid)
        expected.append(nfc_keys(committed))
    head = expected[-1]

    # checkout from whatever is there, in an order that crosses every shape change
    for i in (0, 2, 1, 3, 0):
        check_checkout(work, ids[i], head, expected[i])
        if i == 0:
            assert NFD_NAME not in os.listdir(work / "unicode")  # came back as NFC
            assert nfc(NFD_NAME) in os.listdir(work / "unicode")
    for i in (1, 2):  # into an emptied folder (the checkouts above covered every version)
        check_restore(work, ids[i], expected[i])


# -- random histories ---------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", nfc("é")])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
SMALL = st.binary(max_size=40)
LARGE = st.integers(0, 2**32).map(lambda seed: random.Random(seed).randbytes(150_000))
CONTENT = st.one_of(SMALL, SMALL, SMALL, LARGE)
TARGETS = st.sampled_from(["a", "b/c", "../a", "nowhere/at/all", "é", "."])

ADD = st.tuples(st.just("add"), PATHS, CONTENT, st.booleans())
LINK = st.tuples(st.just("link"), PATHS, TARGETS)
MODIFY = st.tuples(st.just("modify"), st.integers(0, 50), CONTENT)
DELETE = st.tuples(st.just("delete"), st.integers(0, 50))
CHMOD = st.tuples(st.just("chmod"), st.integers(0, 50))
EDIT = st.one_of(ADD, ADD, LINK, MODIFY, DELETE, CHMOD)


def put(tree: Tree, path: str, entry: Entry) -> None:
    """Add ``path``, removing whatever is in its way (a file<->folder shape change)."""
    for other in list(tree):
        if other == path or collides(path, other):
            del tree[other]
    tree[path] = entry


def apply_edit(tree: Tree, edit: tuple[object, ...]) -> None:
    kind = edit[0]
    if kind == "add":
        _, path, content, exec_bit = edit
        put(tree, str(path), ("file", bytes(content), bool(exec_bit)))  # type: ignore[arg-type]
        return
    if kind == "link":
        _, path, target = edit
        put(tree, str(path), ("link", str(target), False))
        return
    if not tree:
        return
    path = sorted(tree)[int(edit[1]) % len(tree)]  # type: ignore[call-overload]
    old_kind, _data, old_exec = tree[path]
    if kind == "modify":
        tree[path] = ("file", bytes(edit[2]), old_exec)  # type: ignore[arg-type]
    elif kind == "delete":
        del tree[path]
    elif kind == "chmod" and old_kind == "file":
        tree[path] = ("file", tree[path][1], not old_exec)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    history=st.lists(st.lists(EDIT, min_size=1, max_size=4), min_size=2, max_size=4),
    data=st.data(),
)
def test_random_histories_round_trip(
    history: list[list[tuple[object, ...]]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory(prefix="vsync-rt-") as tmp:
        root = Path(tmp) / "work"
        root.mkdir()
        Repository.init(root).close()
        tree: Tree = {}
        versions: list[tuple[str, Tree]] = []
        last: str | None = None
        for n, edits in enumerate(history):
            for edit in edits:
                apply_edit(tree, edit)
            materialise(root, tree)
            assert snapshot_tree(root) == tree
            last = commit(root, f"version {n}", last)
            if last is not None:
                versions.append((last, dict(tree)))
        if not versions:
            return
        head = versions[-1][1]
        order = data.draw(st.permutations(range(len(versions))), label="order")
        for i in order:
            cid, expected = versions[i]
            if data.draw(st.booleans(), label=f"checkout {cid}"):
                check_checkout(root, cid, head, expected)
            else:
                check_restore(root, cid, expected)
