"""Trees a peer could use to make vsync run its code: repositories planted inside a
working folder, and names that alias ``.vsync`` or ``.git`` on other file systems.

Each hostile tree is committed behind vsync's back with dulwich (as a modified
vsync would), then offered to a real ``vsync clone`` / ``pull`` / ``checkout``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import run_vsync, snapshot_tree
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo as DulwichRepo

from vsync.model.paths import fold_name, reserved_reason
from vsync.model.repository import BRANCH, Repository
from vsync.model.snapshot import commit_tree, flatten

MOVE = {"committer": b"t <t@e>", "message": b"test: back to a clean branch"}

MODE_FILE, MODE_EXEC, MODE_LINK = 0o100644, 0o100755, 0o120000


def _origin(root: Path) -> Path:
    root.mkdir()
    run_vsync("init", cwd=root)
    (root / "notes.txt").write_text("hello\n")
    run_vsync("commit", "-m", "first", cwd=root)
    return root


def _raw_tree(store: object, node: dict[bytes, object]) -> bytes:
    items = []
    for name, value in node.items():
        if isinstance(value, dict):
            items.append((name + b"/", name, 0o40000, _raw_tree(store, value)))
        else:
            mode, sha = value  # type: ignore[misc]
            items.append((name, name, mode, sha))
    items.sort()
    raw = b"".join(b"%o %s\0%s" % (m, n, bytes.fromhex(s.decode())) for _k, n, m, s in items)
    tree = Tree.from_raw_string(Tree.type_num, raw)
    store.add_object(tree)  # type: ignore[attr-defined]
    return tree.id


def plant(root: Path, entries: dict[bytes, int]) -> None:
    """Commit on ``root``'s branch, behind vsync's back, HEAD's tree plus ``entries``
    (raw path -> mode). Files hold notes.txt's content; symlinks point at notes.txt."""
    with Repository.open_path(root) as repo, DulwichRepo(str(repo.control / "git")) as git:
        head = repo.head()
        assert head is not None
        store = git.object_store
        tree: dict[bytes, object] = {}
        for path, (mode, sha) in flatten(repo.gitdb, commit_tree(repo.gitdb, head)).items():
            tree[path.encode()] = (mode, sha)
        note = tree[b"notes.txt"]
        link = Blob.from_string(b"notes.txt")
        store.add_object(link)
        for path, mode in entries.items():
            *folders, name = path.split(b"/")
            node = tree
            for folder in folders:
                node = node.setdefault(folder, {})  # type: ignore[assignment]
            node[name] = (mode, link.id if mode == MODE_LINK else note[1])  # type: ignore[index]
        c = Commit()
        c.tree = _raw_tree(store, tree)
        c.parents = [head]
        c.author = c.committer = b"e <e@e>"
        c.author_time = c.commit_time = int(time.time())
        c.author_timezone = c.commit_timezone = 0
        c.message = b"planted\n"
        store.add_object(c)
        assert git.refs.set_if_equals(BRANCH, head, c.id)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- a repository planted inside a working folder is never opened ---------------------


def _hostile_bare(where: Path, source: Path, marker: Path) -> Path:
    """A real bare repository (holding ``source``'s history) whose hooks and remote
    command would create ``marker``."""
    run_vsync("init", "--bare", where, cwd=where.parent)
    run_vsync("push", where, cwd=source)
    evil = f"sh -c 'touch {marker}' sh"
    run_vsync("remote", "add", "origin", source, "--remote-cmd", evil, cwd=where)
    for hook in ("pre-push", "pre-commit", "post-commit", "post-merge"):
        (where / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (where / "hooks" / hook).chmod(0o755)
    return where


def test_a_bare_repository_inside_a_working_folder_is_never_opened(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    a = _origin(tmp_path / "a")
    b = tmp_path / "b"
    run_vsync("clone", a, b, cwd=tmp_path)
    # The peer's folder arrived by other means (an archive, rsync, git): vsync itself
    # refuses to write it (test below), but it must also never run it.
    (tmp_path / "stage").mkdir()
    shutil.copytree(_hostile_bare(tmp_path / "stage" / "evil", a, marker), b / "evil")
    inside = b / "evil"
    for args in (("push",), ("fetch",), ("status",), ("commit", "-m", "from inside"), ("push",)):
        out = run_vsync(*args, cwd=inside, check=False)
        assert not marker.exists(), (args, out.stdout, out.stderr)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    # ... they acted on the outer working folder: its origin got the commit
    assert run_vsync("log", "--oneline", cwd=a).stdout.splitlines()[0].endswith("from inside")
    # ... whose snapshot holds the bare repository's files but never its config
    with Repository.open_path(b) as repo:
        tracked = flatten(repo.gitdb, commit_tree(repo.gitdb, repo.head()))  # type: ignore[arg-type]
    assert "evil/hooks/pre-push" in tracked and "evil/config" not in tracked
    out = run_vsync("push", cwd=b / "evil" / "git", check=False)
    assert out.returncode == 0 and not marker.exists()
    out = run_vsync("-C", "evil", "fetch", cwd=b, check=False)
    assert out.returncode == 0 and not marker.exists()
    # A bare repository you are in, outside any working folder, is still one;
    # a folder inside it is not (it is never taken on the way up).
    lone = tmp_path / "stage" / "evil"
    assert run_vsync("remote", "-v", cwd=lone).stdout.startswith("origin\t")
    out = run_vsync("log", cwd=lone / "chunks", check=False)
    assert out.returncode == 2 and "not a vsync repository" in out.stderr
    # Named explicitly (a path remote runs 'serve --stdio PATH'), it is opened.
    out = run_vsync("push", "--create", lone, cwd=b, check=False)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def test_a_damaged_working_folder_above_does_not_let_a_bare_repository_in(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "PWNED"
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / ".vsync").mkdir()  # not a whole control folder, but a working folder's
    (tmp_path / "stage").mkdir()
    a = _origin(tmp_path / "a")
    shutil.copytree(_hostile_bare(tmp_path / "stage" / "evil", a, marker), outer / "evil")
    out = run_vsync("push", cwd=outer / "evil", check=False)
    assert out.returncode == 2 and "not a vsync repository" in out.stderr
    assert not marker.exists()


SHAPES = {
    "plain": {b"sub/config": MODE_FILE, b"sub/git/HEAD": MODE_FILE, b"sub/chunks/p": MODE_FILE},
    "with-hook": {
        b"sub/config": MODE_FILE,
        b"sub/git/HEAD": MODE_FILE,
        b"sub/chunks/p": MODE_FILE,
        b"sub/hooks/pre-push": MODE_EXEC,
    },
    "letter-case": {b"d/Config": MODE_FILE, b"d/GIT/HEAD": MODE_FILE, b"d/CHUNKS/p": MODE_FILE},
    "symlinks": {b"d/config": MODE_LINK, b"d/git": MODE_LINK, b"d/chunks/p": MODE_FILE},
    "ntfs-aliases": {b"d/config.": MODE_FILE, b"d/git /x": MODE_FILE, b"d/chunks::$DATA": 0o100644},
    "top": {b"config": MODE_FILE, b"git/HEAD": MODE_FILE, b"chunks/p": MODE_FILE},
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_tree_shaped_like_a_repository_is_refused(tmp_path: Path, shape: str) -> None:
    a = _origin(tmp_path / "a")
    b = tmp_path / "b"
    run_vsync("clone", a, b, cwd=tmp_path)
    before = snapshot_tree(b)
    plant(a, SHAPES[shape])
    # receiving: clone and pull refuse it, nothing is written
    out = run_vsync("clone", a, tmp_path / "c", cwd=tmp_path, check=False)
    assert out.returncode == 1 and "shape of a vsync repository" in one_line(out.stderr)
    assert not (tmp_path / "c").exists()
    out = run_vsync("pull", cwd=b, check=False)
    assert out.returncode == 1 and "shape of a vsync repository" in one_line(out.stderr)
    assert snapshot_tree(b) == before
    # checking out such a tree from the repository's own history: refused, nothing written
    out = run_vsync("checkout", "HEAD", cwd=a, check=False)
    assert out.returncode == 2 and "shape of a vsync repository" in one_line(out.stderr)
    assert sorted(os.listdir(a)) == [".vsync", "notes.txt"]


def test_a_repository_shaped_folder_is_not_committed_whole(tmp_path: Path) -> None:
    a = _origin(tmp_path / "a")
    for name in ("config", "git/HEAD", "chunks/p"):
        (a / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (a / "d" / name).write_text("x\n")
    out = run_vsync("commit", "-m", "d", cwd=a)
    assert "skipping 'd/config'" in out.stderr
    b = tmp_path / "b"
    run_vsync("clone", a, b, cwd=tmp_path)  # a peer accepts what vsync commits
    assert (b / "d" / "git" / "HEAD").exists() and not (b / "d" / "config").exists()


# -- names that alias .vsync or .git -----------------------------------------------------

ALIASES = [
    ".vsync.",
    ".vsync ",
    ".vsync . .",
    ".Vsync..",
    "VSYNC~1",
    "vsync~2",
    ".vsync:stream",
    ".v\u200csync",
    "\ufeff.vsync",
    ".vsy\u00adnc",
    ".v\u017fync",
    ".GIT",
    ".git.",
    ".git . ",
    "GIT~1",
    "git~3",
    ".git::$INDEX_ALLOCATION",
    ".g\u200cit",
    ".git\u200d",
    "\u206a.git",
]


def test_names_aliasing_vsync_or_git_are_refused_on_receive(tmp_path: Path) -> None:
    a = _origin(tmp_path / "a")
    b = tmp_path / "b"
    run_vsync("clone", a, b, cwd=tmp_path)
    before = snapshot_tree(b)
    with Repository.open_path(a) as repo:
        clean = repo.head()
    for i, alias in enumerate(ALIASES):
        name = alias.encode()
        where = {name + b"/hooks/pre-commit": MODE_EXEC} if i % 2 else {b"d/" + name: MODE_FILE}
        plant(a, where)
        if i == 0:
            out = run_vsync("clone", a, tmp_path / "c", cwd=tmp_path, check=False)
            assert out.returncode == 1 and "unsafe" in one_line(out.stderr)
            assert not (tmp_path / "c").exists()
        out = run_vsync("pull", cwd=b, check=False)
        assert out.returncode == 1 and "unsafe" in one_line(out.stderr), alias
        assert snapshot_tree(b) == before, alias
        with Repository.open_path(a) as repo:  # a clean branch for the next one
            assert repo.gitdb.swap_ref(BRANCH, repo.head(), clean, **MOVE)


def test_names_aliasing_vsync_or_git_are_refused_on_checkout(tmp_path: Path) -> None:
    a = _origin(tmp_path / "a")
    for alias in ALIASES:
        plant(a, {alias.encode() + b"/x": MODE_FILE})
        out = run_vsync("checkout", "HEAD", cwd=a, check=False)
        assert out.returncode == 2 and "reserved" in one_line(out.stderr), alias
        assert sorted(os.listdir(a)) == [".vsync", "notes.txt"], alias
        with Repository.open_path(a) as repo:  # back to a clean branch for the next one
            head = repo.head()
            assert head is not None
            parent = repo.gitdb.commit(head).parents[0]
            assert repo.gitdb.swap_ref(BRANCH, head, parent, **MOVE)


def test_names_aliasing_vsync_or_git_are_never_committed(tmp_path: Path) -> None:
    a = _origin(tmp_path / "a")
    for alias in ALIASES:
        if ":" in alias:
            continue  # fine on Linux, but kept out of the folder names below for clarity
        (a / alias).mkdir()
        (a / alias / "x").write_text("x\n")
    (a / "sub").mkdir()
    (a / "sub" / ".vsync").write_text("a file, not a control folder\n")
    (a / ".git").mkdir()
    (a / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out = run_vsync("commit", "-m", "aliases", cwd=a)
    assert out.stderr.count("name is reserved") == len([x for x in ALIASES if ":" not in x])
    with Repository.open_path(a) as repo:
        tracked = flatten(repo.gitdb, commit_tree(repo.gitdb, repo.head()))  # type: ignore[arg-type]
    assert sorted(tracked) == [".git/HEAD", "notes.txt"]
    run_vsync("clone", a, tmp_path / "b", cwd=tmp_path)  # and a peer takes what was committed


def test_fold_name_covers_git_and_ntfs_rules() -> None:
    # every code point git's next_hfs_char (utf8.c) ignores is dropped
    ignored = [0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070)]
    for cp in [*ignored, 0xFEFF]:
        assert fold_name(f".g{chr(cp)}it") == ".git", hex(cp)
        assert reserved_reason(f".{chr(cp)}vsync") is not None, hex(cp)
    assert fold_name(".GIT . .::$DATA") == ".git"
    for fine in (".git", ".gitignore", ".gitmodules", "git", "vsync", ".vsyncignore", "git~",
                 "GIT~X", "notes.txt", ".vsync-tmp-x", "config"):  # fmt: skip
        assert reserved_reason(fine) is None, fine
