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
