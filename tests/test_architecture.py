"""The layers of docs/design: imports point downward only, and only the CLI prints.

cli -> ui -> sync -> ops -> model -> store (errors.py and wording.py, which import no
other vsync module, are importable from anywhere).

The checker reads every form an import can take (as dulwich's test_source.py
does): ``import a.b``; ``from a import b`` (which imports ``a`` and may import
``a.b``: ``from vsync import cli`` is an import of ``vsync.cli``); relative
imports, resolved against the module's own package; and the string argument
of ``importlib.import_module``, ``__import__`` and ``importlib.util.find_spec``
(an f-string counts by its constant prefix). A call whose module name cannot be
read at all is reported as a violation outside the CLI. The checker itself is
tested against planted violations in synthetic source trees (below).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vsync"
ORDER = ["store", "model", "ops", "sync", "ui", "cli"]
THIRD_PARTY_HOMES = {
    "asyncssh": {"sync"},
    "watchfiles": {"sync"},
    "inotify_simple": {"sync"},
    "prompt_toolkit": {"ui"},
    "merge3": {"ops", "model"},
    "pyfastcdc": {"store"},
    "zstandard": {"store"},
    "blake3": {"store"},
    "cryptography": {"sync"},
    "obstore": {"sync"},
}
IMPORT_FUNCTIONS = {"import_module", "__import__", "find_spec"}
DYNAMIC = "<dynamic>"  # what imported() gives for an import call it cannot read


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``vsync/store/chunkstore.py`` -> ``vsync.store.chunkstore`` (a package: its folder)."""
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path = PACKAGE) -> list[tuple[str, Path, ast.Module]]:
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        layer = rel.parts[0] if len(rel.parts) > 1 else ""
        out.append((layer, path, ast.parse(path.read_text(), str(path))))
    return out


def _absolute(module: str, level: int, name: str | None, is_package: bool) -> str:
    """A relative import's target, resolved as Python does; unresolvable: left relative."""
    if level == 0:
        return name or ""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]  # a module's package is its parent
    if level - 1 >= len(base):
        return "." * level + (name or "")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _call_target(node: ast.Call, module: str, is_package: bool) -> str | None:
    """The module an importlib.import_module / __import__ / find_spec call names."""
    func = node.func
    fname = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if fname not in IMPORT_FUNCTIONS:
        return None
    if not node.args:
        return DYNAMIC
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        name = arg.value
    elif (
        isinstance(arg, ast.JoinedStr)
        and arg.values
        and isinstance(arg.values[0], ast.Constant)
        and isinstance(arg.values[0].value, str)
        and "." in arg.values[0].value.lstrip(".")
    ):
        name = arg.values[0].value.rsplit(".", 1)[0]  # f"vsync.cli.{x}": vsync.cli
    else:
        return DYNAMIC
    if name.startswith("."):  # import_module(".x", package): relative to this package
        dots = len(name) - len(name.lstrip("."))
        return _absolute(module, dots, name.lstrip(".") or None, is_package)
    return name


def imported(tree: ast.Module, module: str = "", is_package: bool = False) -> list[str]:
    """Every module name ``tree`` imports, absolute.

    ``module`` is the dotted name of the module ``tree`` was parsed from (and
    ``is_package`` whether it is a package's ``__init__``); relative imports are
    resolved against it (without it they stay relative, beginning with '.').
    ``from a import b`` gives both ``a`` and ``a.b``.
    """
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node.level, node.module, is_package)
            if base and not base.endswith("."):
                names.append(base)
            sep = "" if base.endswith(".") else "."
            names.extend(f"{base}{sep}{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call):
            target = _call_target(node, module, is_package)
            if target is not None:
                names.append(target)
    return names


def imports_of(path: Path, tree: ast.Module, package: Path = PACKAGE) -> list[str]:
    return imported(tree, module_name(path, package), path.name == "__init__.py")


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Each import in ``package`` that points from a layer to a higher one."""
    bad = []
    top = package.name
    for layer, path, tree in modules(package):
        if layer not in ORDER:
            continue
        for name in imports_of(path, tree, package):
            if name == DYNAMIC:
                if layer != "cli":
                    bad.append(f"{path.relative_to(package)} imports a module it names at run time")
                continue
            parts = name.split(".")
            if parts[0] != top or len(parts) < 2 or parts[1] not in ORDER:
                continue
            if ORDER.index(parts[1]) > ORDER.index(layer):
                bad.append(f"{path.relative_to(package)} imports {name}")
    return bad


def misplaced_third_party(package: Path = PACKAGE) -> list[str]:
    """Each import of a third-party library outside the layers it may be used in."""
    bad = []
    for layer, path, tree in modules(package):
        for name in imports_of(path, tree, package):
            top = name.split(".")[0]
            homes = THIRD_PARTY_HOMES.get(top)
            if homes is not None and layer not in homes:
                bad.append(f"{path.relative_to(package)} imports {name}")
    return bad


def test_imports_point_downward() -> None:
    bad = upward_imports()
    assert not bad, bad


def test_third_party_libraries_stay_in_their_layer() -> None:
    bad = misplaced_third_party()
    assert not bad, bad


# -- the checker itself, on synthetic source trees with planted violations ------------------

UPWARD = {
    "absolute": "import vsync.cli.main\n",
    "from-absolute": "from vsync.cli.main import main\n",
    "from-package": "from vsync import cli\n",
    "relative": "from ..cli import main\n",
    "relative-package": "from .. import cli\n",
    "relative-deep": "from ..cli.main import main\n",
    "import_module": "import importlib\nimportlib.import_module('vsync.cli.main')\n",
    "import_module-bare": "from importlib import import_module\nimport_module('vsync.ui')\n",
    "import_module-relative": "import importlib\nimportlib.import_module('..cli', __package__)\n",
    "import_module-fstring": "import importlib\nimportlib.import_module(f'vsync.cli.{1}')\n",
    "import_module-dynamic": "import importlib\nN = 'vsync.cli'\nimportlib.import_module(N)\n",
    "__import__": "__import__('vsync.sync.client')\n",
    "find_spec": "import importlib.util\nimportlib.util.find_spec('vsync.ops.log')\n",
    "in-function": "def f() -> None:\n    from vsync.model import repository\n",
}
CLEAN = (
    "import importlib\n"
    "import os\n"
    "from . import sibling\n"
    "from .sibling import thing\n"
    "from vsync import errors\n"
    "from vsync.store import other\n"
    "import vsync.store.other\n"
    "importlib.import_module('vsync.store.other')\n"
    "__import__('os')\n"
)


def synthetic_package(root: Path, layer: str, source: str) -> Path:
    """A tree shaped like vsync/ with ``source`` as the module ``<layer>/planted.py``."""
    package = root / "vsync"
    for name in ORDER:
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
        (package / name / "other.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / layer / "sibling.py").write_text("thing = 1\n")
    (package / layer / "planted.py").write_text(source)
    return package


@pytest.mark.parametrize("form", sorted(UPWARD))
def test_the_layer_check_catches_every_import_form(tmp_path: Path, form: str) -> None:
    package = synthetic_package(tmp_path, "store", UPWARD[form])
    bad = upward_imports(package)
    assert bad and all(b.startswith("store/planted.py imports") for b in bad), bad


def test_the_layer_check_catches_an_upward_import_in_a_package_init(tmp_path: Path) -> None:
    package = synthetic_package(tmp_path, "model", "")
    (package / "model" / "__init__.py").write_text("from ..ops import other\n")
    assert upward_imports(package) == [
        "model/__init__.py imports vsync.ops",
        "model/__init__.py imports vsync.ops.other",
    ]


def test_the_layer_check_passes_a_clean_tree(tmp_path: Path) -> None:
    assert upward_imports(synthetic_package(tmp_path, "store", CLEAN)) == []
    assert misplaced_third_party(synthetic_package(tmp_path / "2", "store", CLEAN)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncssh\n",
        "from asyncssh import connect\n",
        "import importlib\nimportlib.import_module('asyncssh.connection')\n",
        "__import__('prompt_toolkit')\n",
    ],
)
def test_the_library_check_catches_every_import_form(tmp_path: Path, source: str) -> None:
    bad = misplaced_third_party(synthetic_package(tmp_path, "store", source))
    assert bad and all(b.startswith("store/planted.py imports") for b in bad), bad


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
        if rel.startswith("model/gitdb/"):
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
        "sync/transfer.py": "from dulwich.pack import Pack\n",
        # allowed: inside gitdb, and the three harmless modules
        "model/gitdb/db.py": "from dulwich.repo import Repo\n",
        "model/g.py": "from dulwich.ignore import IgnoreFilter\nimport dulwich.approxidate\n",
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
        "sync/transfer.py imports dulwich.pack",
        "sync/transfer.py imports dulwich.pack.Pack",
        "ui/d.py imports dulwich.repo",
    ]
    assert _absolute_imports(root / "model/h.py", root) == [
        "vsync.model.gitdb",
        "vsync.model.gitdb.GitDB",
        "vsync.model",
        "vsync.model.snapshot",
    ]
