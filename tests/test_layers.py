"""The package's layers import one way: cli > workflows > engine > {method, models, eval} > data > base.

Read from the source with ``ast`` (deferred imports inside functions count
too): an import against that direction, an import between two packages of
the same layer, an import cycle, or a private name imported from another
module fails this test. docs/ARCHITECTURE.md explains where each kind of
change goes.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "adaptau_cli"
RANK = {"base": 0, "data": 1, "method": 2, "models": 2, "eval": 2, "engine": 3, "workflows": 4, "cli": 5}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("adaptau_cli")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("adaptau_cli"):
                out.append((mod, [a.name for a in node.names], node.lineno))
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def _files():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _known_modules() -> set[str]:
    return {_module_name(p) for p in _files()}


def _target(mod: str, names: list[str], known: set[str]) -> list[str]:
    """The modules an import statement reaches (``from pkg import submodule`` reaches the submodule)."""
    subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]
    return subs or [mod]


def test_imports_go_down_the_layers_only():
    known = _known_modules()
    wrong = []
    for path in _files():
        here = _module_name(path)
        src = _layer(here)
        if src is None:                      # the package root: adaptau_cli/__init__.py, __main__.py
            continue
        for mod, names, line in _imports(path):
            for target in _target(mod, names, known):
                dst = _layer(target)
                if dst is None:
                    if target != "adaptau_cli" or names != ["__version__"]:
                        wrong.append(f"{here}:{line} imports {target} (the package root)")
                elif dst != src and RANK[dst] >= RANK[src]:
                    wrong.append(f"{here}:{line} ({src}) imports {target} ({dst})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_private_name_is_imported_across_modules():
    wrong = [f"{_module_name(p)}:{line} imports {n} from {mod}" for p in _files()
             for mod, names, line in _imports(p) for n in names if n.startswith("_") and n != "__version__"]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    known = _known_modules()
    graph = {m: set() for m in known}
    for path in _files():
        here = _module_name(path)
        for mod, names, _ in _imports(path):
            for target in _target(mod, names, known):
                if target in known and target != here and not here.startswith(target + "."):
                    graph[here].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layer_test_catches_a_wrong_import(tmp_path, monkeypatch):
    """The checker itself: an engine module importing the CLI is reported."""
    fake = tmp_path / "adaptau_cli"
    (fake / "engine").mkdir(parents=True)
    (fake / "cli").mkdir()
    for f in ("__init__.py", "engine/__init__.py", "cli/__init__.py", "cli/app.py"):
        (fake / f).write_text("")
    (fake / "engine" / "bad.py").write_text("from adaptau_cli.cli.app import _helper\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    for check in (test_imports_go_down_the_layers_only, test_no_private_name_is_imported_across_modules):
        try:
            check()
        except AssertionError as err:
            assert "adaptau_cli.engine.bad:1" in str(err)
        else:
            raise AssertionError(f"{check.__name__} missed the wrong import")
