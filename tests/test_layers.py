"""The package's layering (dri_hep2.LAYERS, docs/design.md): every import inside the package,
module level or inside a function, goes to the module's own layer or one below it, and the
imports between modules form no circle. Read from the source with ast, so a new upward import
fails here before anything runs."""
from __future__ import annotations

import ast
from pathlib import Path

import dri_hep2

PKG = Path(dri_hep2.__file__).parent
ROOT_MODULES = {"paper", "ledger", "classes", "schedules", "errors", "atomic", "folders", "cli",
                "gpus"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    """Index in LAYERS: a plain module at the root is layer 0, anything else its folder's."""
    top = module.split(".")[0] if "." in module or module in dri_hep2.LAYERS else ""
    return dri_hep2.LAYERS.index(top)


def _imports(module: str) -> set[str]:
    """The package modules `module` imports (relative or absolute, any depth)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("dri_hep2.")]
            found |= {n[len("dri_hep2."):] for n in names}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".") if package else []
            parts = parts[:len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        elif node.module and node.module.split(".")[0] == "dri_hep2":
            base = node.module[len("dri_hep2."):] if "." in node.module else ""
        else:
            continue
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            found.add(full if full in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


def test_root_holds_only_facts():
    root = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert root == ROOT_MODULES, f"modules at the package root beyond the facts: {root - ROOT_MODULES}"
    folders = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(dri_hep2.LAYERS[1:])


def test_no_upward_import():
    upward = [f"{m} ({dri_hep2.LAYERS[_layer(m)] or 'root'}) imports {i} "
              f"({dri_hep2.LAYERS[_layer(i)] or 'root'})"
              for m in sorted(MODULES) for i in sorted(_imports(m)) if _layer(i) > _layer(m)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = {m: _imports(m) - {""} for m in MODULES}
    # Packages' __init__ modules import nothing; a module importing its own package is none.
    state: dict[str, int] = {}
    circles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circles.append(" -> ".join(stack[stack.index(n):] + [m, n]) if n in stack
                               else f"{m} -> {n}")
            elif n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule's reader finds imports inside functions too (the form a circle hides in)."""
    src = "def f():\n    from ..model import predict\n"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert node.level == 2 and node.module == "model"
    assert _layer("model.predict") > _layer("data.i3a") > _layer("engine.blas") > _layer("paper")
