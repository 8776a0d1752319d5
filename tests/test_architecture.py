"""The layers of docs/design: imports point downward only, and only the CLI prints.

cli -> ui -> sync -> ops -> model -> store (errors.py is importable from anywhere).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vsync"
ORDER = ["store", "model", "ops", "sync", "ui", "cli"]
THIRD_PARTY_HOMES = {
    "asyncssh": {"sync"},
    "prompt_toolkit": {"ui"},
    "merge3": {"ops", "model"},
    "pyfastcdc": {"store"},
    "zstandard": {"store"},
    "blake3": {"store"},
}


def modules() -> list[tuple[str, Path, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0] if len(rel.parts) > 1 else ""
        out.append((layer, path, ast.parse(path.read_text(), str(path))))
    return out


def imported(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_point_downward() -> None:
    bad = []
    for layer, path, tree in modules():
        if layer not in ORDER:
            continue
        for name in imported(tree):
            parts = name.split(".")
            if parts[0] != "vsync" or len(parts) < 2 or parts[1] not in ORDER:
                continue
            if ORDER.index(parts[1]) > ORDER.index(layer):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, bad


def test_third_party_libraries_stay_in_their_layer() -> None:
    bad = []
    for layer, path, tree in modules():
        for name in imported(tree):
            top = name.split(".")[0]
            homes = THIRD_PARTY_HOMES.get(top)
            if homes is not None and layer not in homes:
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, bad


def test_only_the_cli_prints() -> None:
    bad = []
    for layer, path, tree in modules():
        if layer in ("cli", "ui") or path.name == "__main__.py":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not bad, bad


def test_modules_stay_small() -> None:
    big = [
        f"{p.relative_to(PACKAGE)}: {n} lines"
        for _layer, p, _t in modules()
        if (n := len(p.read_text().splitlines())) > 900
    ]
    assert not big, big


# -- dulwich stays behind vsync/model/gitdb --------------------------------------------------

VSYNC_DIR = Path(__file__).resolve().parent.parent / "vsync"
# dulwich modules any layer may use: they do not touch git objects, packs or refs.
DULWICH_ANYWHERE = {"dulwich.config", "dulwich.ignore", "dulwich.approxidate"}
# vsync/sync still reads and writes git through dulwich (via Repository.git); the lead
# ports these five to GitDB after merging issue 10, then empties this list.
DULWICH_PENDING = {
    "sync/transfer.py",
    "sync/packgen.py",
    "sync/negotiate.py",
    "sync/server.py",
    "sync/client.py",
}


def _absolute_imports(path: Path, root: Path) -> list[str]:
    """Every module ``path`` (under the package folder ``root``) imports, in any form:
    ``import a.b``, ``from a import b`` (as ``a`` and ``a.b``), relative imports
    resolved against ``path``'s package, ``importlib.import_module("a.b")`` and
    ``__import__("a.b")`` with a literal name."""
    package = [root.name, *path.relative_to(root).parts[:-1]]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.append(module)
            names.extend(f"{module}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names.append(first.value)
    return names


def dulwich_outside_gitdb(root: Path) -> list[str]:
    """``file imports dulwich.x`` for every dulwich import outside ``root``/model/gitdb."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("model/gitdb/") or rel in DULWICH_PENDING:
            continue
        for name in _absolute_imports(path, root):
            if name.split(".")[0] != "dulwich":
                continue
            if not any(name == ok or name.startswith(ok + ".") for ok in DULWICH_ANYWHERE):
                bad.append(f"{rel} imports {name}")
    return sorted(set(bad))


def test_dulwich_objects_packs_and_refs_only_in_gitdb() -> None:
    assert (VSYNC_DIR / "model" / "gitdb" / "__init__.py").is_file()
    assert dulwich_outside_gitdb(VSYNC_DIR) == []


def test_the_dulwich_rule_sees_every_import_form(tmp_path: Path) -> None:
    root = tmp_path / "vsync"
    planted = {
        "ops/a.py": "from dulwich.objects import Blob\n",
        "ops/b.py": "import dulwich.pack as p\n",
        "ops/c.py": "from dulwich import refs\n",
        "ui/d.py": "import importlib\nimportlib.import_module('dulwich.repo')\n",
        "cli/e.py": "def f():\n    return __import__('dulwich.object_store')\n",
        "model/f.py": "from dulwich.config import ConfigFile\nfrom dulwich.graph import x\n",
        "sync/pull.py": "from dulwich.reflog import read_reflog\n",
        # allowed: inside gitdb, the three harmless modules, the pending sync files
        "model/gitdb/db.py": "from dulwich.repo import Repo\n",
        "model/g.py": "from dulwich.ignore import IgnoreFilter\nimport dulwich.approxidate\n",
        "sync/transfer.py": "from dulwich.pack import Pack\n",
        "model/h.py": "from .gitdb import GitDB\nfrom . import snapshot\n",
    }
    for rel, text in planted.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert dulwich_outside_gitdb(root) == [
        "cli/e.py imports dulwich.object_store",
        "model/f.py imports dulwich.graph",
        "model/f.py imports dulwich.graph.x",
        "ops/a.py imports dulwich.objects",
        "ops/a.py imports dulwich.objects.Blob",
        "ops/b.py imports dulwich.pack",
        "ops/c.py imports dulwich",
        "ops/c.py imports dulwich.refs",
        "sync/pull.py imports dulwich.reflog",
        "sync/pull.py imports dulwich.reflog.read_reflog",
        "ui/d.py imports dulwich.repo",
    ]
    assert _absolute_imports(root / "model/h.py", root) == [
        "vsync.model.gitdb",
        "vsync.model.gitdb.GitDB",
        "vsync.model",
        "vsync.model.snapshot",
    ]
