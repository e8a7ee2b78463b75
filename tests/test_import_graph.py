"""The package's import graph: no import cycles, no private names borrowed across modules, small modules.

Every ``import`` in every module counts, wherever it stands: at the top, inside
a function, or under ``if TYPE_CHECKING:`` (a cycle of annotations is still two
modules that each need the other). Importing ``a.b.c`` also runs the
``__init__`` of the packages ``a`` and ``a.b``, so those are edges too, except
for the importer's own packages.

The lists below name what is still wrong elsewhere, each with the work that
removes it. They may only shrink: an entry that no longer applies fails the
tests until it is deleted.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mazeinterp"
MAX_LINES = 600

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Import cycles that remain, as sets of modules (strongly connected components); to be emptied."""

KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()
"""``(importer, module, name)``: private names still taken from another module; to be emptied."""

LONG_MODULES_BY_DESIGN = {"mazeinterp.train.ppo", "mazeinterp.train.imitate"}
"""Single-file trainers, readable top to bottom (as CleanRL's): exempt from :data:`MAX_LINES`."""

KNOWN_LONG_MODULES: set[str] = set()
"""Modules still over :data:`MAX_LINES` lines, to be split; to be emptied."""


# --------------------------------------------------------------------------------------
# reading the graph


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``package`` under ``root`` (packages by their ``__init__``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    """The absolute module name that ``node`` (a ``from … import``, maybe relative) imports from."""
    if not node.level:
        return node.module or ""
    base = module if _is_package(module, modules) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package, or None (outside it)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, modules: dict[str, Path]) -> Iterator[tuple[str, str | None]]:
    """``(imported module, name or None)`` for every import in ``module`` of another module of the package.

    ``from m import x`` gives ``(m.x, None)`` when ``m.x`` is a module, else ``(m, "x")``;
    ``import m`` gives ``(m, None)``; aliases bound to modules also report ``(m, "_x")``
    for each attribute ``alias._x`` that the module reads.
    """
    tree = ast.parse(modules[module].read_text(), filename=str(modules[module]))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target:
                    yield target, None
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, modules)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    yield f"{source}.{alias.name}", None
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
                elif source in modules:
                    yield source, alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield aliases[node.value.id], node.attr


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package's modules it imports (with the packages whose ``__init__`` that runs)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name in modules:
        own_packages = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        for target, _ in imports_of(name, modules):
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                step = ".".join(parts[:k])
                if step in modules and step != name and step not in own_packages:
                    graph[name].add(step)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def private_imports(modules: dict[str, Path]) -> set[tuple[str, str, str]]:
    """``(importer, module, name)`` for every private name (``_x``, not ``__x__``) taken from another module."""
    found = set()
    for name in modules:
        for target, attr in imports_of(name, modules):
            if attr and attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__")) and target != name:
                found.add((name, target, attr))
    return found


def _fmt(cycle: frozenset[str]) -> str:
    return " ↔ ".join(sorted(cycle))


# --------------------------------------------------------------------------------------
# the package


MODULES = find_modules(PACKAGE_ROOT, PACKAGE)


WINGS = ("runtime", "maze", "core", "checkpoints", "analysis", "rollout", "viz", "sweep", "train", "cli")
"""The package's wings, lowest first: a module may import from its own wing and from wings before it."""


def wing(module: str) -> str | None:
    """The wing of a dotted module name (``mazeinterp.core.hooks`` → ``core``); None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """``(importer, imported)`` pairs where a module imports from a wing above its own."""
    rank = {name: i for i, name in enumerate(WINGS)}
    return {(a, b) for a, targets in graph.items() for b in targets
            if wing(a) in rank and wing(b) in rank and rank[wing(b)] > rank[wing(a)]}  # type: ignore[index]


def test_the_top_level_holds_only_wings() -> None:
    top = sorted(p.name for p in (PACKAGE_ROOT / PACKAGE).iterdir()
                 if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir()))
    assert top == sorted(["__init__.py", *WINGS]), top


def test_wings_import_only_from_wings_below() -> None:
    assert upward_imports(import_graph(MODULES)) == set()


def test_an_upward_import_is_found() -> None:
    graph = {"mazeinterp.core.hooks": {"mazeinterp.rollout.runner"}, "mazeinterp.rollout.runner": {"mazeinterp.core.hooks"},
             "mazeinterp.cli": {"mazeinterp.core.hooks"}}
    assert upward_imports(graph) == {("mazeinterp.core.hooks", "mazeinterp.rollout.runner")}


def test_no_import_cycles_but_the_known_ones() -> None:
    graph = import_graph(MODULES)
    new = cycles(graph) - KNOWN_CYCLES
    assert not new, "import cycles: " + "; ".join(
        f"{_fmt(c)} ({', '.join(f'{a} → {b}' for a in sorted(c) for b in sorted(graph[a] & c))})" for c in new)


def test_known_cycles_are_still_there() -> None:
    gone = KNOWN_CYCLES - cycles(import_graph(MODULES))
    assert not gone, f"no longer a cycle, remove from KNOWN_CYCLES: {', '.join(_fmt(c) for c in gone)}"


def test_no_private_names_imported_across_modules_but_the_known_ones() -> None:
    found = private_imports(MODULES)
    assert not found - KNOWN_PRIVATE_IMPORTS, (
        "private names taken from another module (make them public with a docstring, or keep them inside): "
        + ", ".join(f"{a} uses {b}.{n}" for a, b, n in sorted(found - KNOWN_PRIVATE_IMPORTS)))
    gone = KNOWN_PRIVATE_IMPORTS - found
    assert not gone, f"no longer imported, remove from KNOWN_PRIVATE_IMPORTS: {sorted(gone)}"


def test_modules_stay_small() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    long = {name for name, n in lines.items() if n > MAX_LINES} - LONG_MODULES_BY_DESIGN
    assert not long - KNOWN_LONG_MODULES, ", ".join(
        f"{name} has {lines[name]} lines (at most {MAX_LINES})" for name in sorted(long - KNOWN_LONG_MODULES))
    assert not KNOWN_LONG_MODULES - long, f"now short enough, remove from KNOWN_LONG_MODULES: {KNOWN_LONG_MODULES - long}"
    assert set(KNOWN_LONG_MODULES | LONG_MODULES_BY_DESIGN) <= set(MODULES)


# --------------------------------------------------------------------------------------
# the reader itself, on a hand-made package


def _write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return find_modules(root, "pkg")


def test_the_reader_finds_every_kind_of_import(tmp_path: Path) -> None:
    modules = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": """
            from typing import TYPE_CHECKING
            import os
            if TYPE_CHECKING:
                from pkg.b import Thing
            """,
        "pkg/b.py": """
            def late():
                from .sub import c
                return c._hidden
            """,
        "pkg/sub/__init__.py": "from pkg.sub.c import public\n",
        "pkg/sub/c.py": """
            import pkg.a as a_module
            public = 1
            _hidden = 2
            """,
        "pkg/d.py": "from pkg.sub import public\nfrom pkg.a import _secret, __version__\n",
    })
    graph = import_graph(modules)
    assert graph == {
        "pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub", "pkg.sub.c"}, "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.a"}, "pkg.d": {"pkg.sub", "pkg.a"},
    }
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"})}
    assert private_imports(modules) == {("pkg.b", "pkg.sub.c", "_hidden"), ("pkg.d", "pkg.a", "_secret")}


@pytest.mark.parametrize("graph, expected", [
    ({"a": set(), "b": {"a"}}, set()),
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, {frozenset("ab")}),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}}, {frozenset("abc"), frozenset("de")}),
])
def test_cycles_are_the_strongly_connected_components(graph, expected) -> None:
    assert cycles(graph) == expected


def test_importing_the_package_and_its_wings_loads_no_torch() -> None:
    """``import mazeinterp`` stays cheap, and so does each wing's ``__init__`` but rollout's, which re-exports its API."""
    import subprocess
    import sys

    wings = ", ".join(f"mazeinterp.{w}" for w in WINGS if w != "rollout")
    code = f"import sys, mazeinterp, {wings}; print(sorted(m for m in ('torch', 'matplotlib', 'procgen') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT)
    assert out.stdout.strip() == "[]", out.stdout
