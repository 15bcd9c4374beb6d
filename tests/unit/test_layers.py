"""The package's layers: imports only go downwards, there is no import cycle, and no avxai import hides in a function.

Every module of ``avxai`` is parsed with :mod:`ast` (nothing is imported). An import counts wherever it is written
(module level, ``if`` / ``try`` blocks, or inside a function): a deferred import hides a cycle, it does not remove
it. The one exception is :meth:`avxai.explanation.Explanation.plot`, which draws itself through ``avxai.viz``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "avxai"

#: bottom first; a module may import its own layer and the layers below it, never a higher one.
#: The key is the first name under ``avxai`` (a module or a sub-package).
LAYERS: list[set[str]] = [
    {"checks", "config", "hygiene", "io", "memory", "safety", "version", "perturbations", "faces", "tracking"},
    {"modalities", "scorers", "models", "data"},
    {"engine"},
    {"explanation", "viz", "notebook"},  # viz draws explanations; Explanation.plot is the one lazy call into viz
    {"methods", "metrics", "inspect"},  # inspect: what a model learned (filters, embeddings, top segments, ...)
    {"tasks", "training", "recipe_config"},
    {"audit"},
    {"cli", "cli_parser", "explain_command", "demo", "__main__", "inspect_command"},
]
#: imports within one layer that are still forbidden: (importer, imported) by first name
FORBIDDEN_SIDEWAYS = {("metrics", "methods"), ("methods", "metrics"), ("explanation", "viz"),
                      ("notebook", "viz")}  # the notebook page draws through Explanation.plot, like save()
#: the one allowed lazy import: (module, imported top name)
LAZY_ALLOWED = {("avxai.explanation", "viz")}
ROOT_LAYER = len(LAYERS)  # the package's __init__ re-exports the public API: above everything


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest module name of avxai that ``name`` (a module or ``module.attribute``) starts with."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool) -> set[str]:
    """The avxai modules an ``import`` / ``from ... import`` statement in ``module`` names."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name.split(".")[0] == "avxai"]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            parts = parts if is_package else parts[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        if base.split(".")[0] == "avxai":
            names = [base] + [f"{base}.{a.name}" for a in node.names]
    found = {_resolve(n) for n in names}
    return {t for t in found if t and t != module}


def _imports() -> list[tuple[str, str, bool, int]]:
    """``(module, imported module, inside a function, line)`` for every avxai import of the package."""
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        in_function: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py"):
                    out.append((module, target, id(node) in in_function, node.lineno))
    return out


IMPORTS = _imports()


def _top(module: str) -> str:
    """``avxai.methods.base`` -> ``methods``; the package itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    top = _top(module)
    if not top:
        return ROOT_LAYER
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add {top!r} to LAYERS in tests/test_layers.py")


def _lazy_allowed(module: str, target: str) -> bool:
    return (module, _top(target)) in LAZY_ALLOWED


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, deferred, _ in IMPORTS:
        if not (deferred and _lazy_allowed(module, target)):
            edges[module].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_parser_sees_the_package():
    assert len(MODULES) > 50 and "avxai.engine" in MODULES and "avxai.checks" in MODULES
    assert any(t == "avxai.engine" for m, t, _, _ in IMPORTS if m == "avxai.methods.base")
    assert all(_top(m) == "" or layer_of(m) >= 0 for m in MODULES)  # every module has a layer


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    cycles = _cycles(_edges())
    assert not cycles, "import cycles (module-level and deferred imports both count):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_imports_only_go_downwards():
    upward = []
    for module, target, deferred, line in IMPORTS:
        if deferred and _lazy_allowed(module, target):
            continue
        mine, theirs = layer_of(module), layer_of(target)
        if theirs > mine:
            upward.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} (layer {mine}) imports "
                          f"{target} (layer {theirs})")
        elif (_top(module), _top(target)) in FORBIDDEN_SIDEWAYS:
            upward.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}: {module} imports {target} "
                          "(forbidden within its layer)")
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_no_avxai_import_inside_a_function():
    deferred = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line}: {m} imports {t} inside a function"
                for m, t, inside, line in IMPORTS if inside and not _lazy_allowed(m, t)]
    assert not deferred, ("deferred avxai imports (move them to the top of the module; a deferred import hides a "
                          "cycle, it does not remove it):\n" + "\n".join(sorted(deferred)))


@pytest.mark.parametrize("module", ["avxai.engine", "avxai.checks"])
def test_the_engine_and_the_checks_sit_where_the_layers_say(module):
    below = {t for m, t, _, _ in IMPORTS if m == module}
    assert all(layer_of(t) < layer_of(module) or _top(t) == _top(module) for t in below), below
