"""Mutation testing of the pure-logic modules: does every change of behaviour fail a test?

For each listed module the script makes one small change at a time (a flipped comparison,
``+`` ↔ ``-``, ``*`` ↔ ``/``, ``and`` ↔ ``or``, ``min`` ↔ ``max``, an integer constant plus
one, ``True`` ↔ ``False``, a dropped ``not``, ``raise`` → ``pass``) and runs that module's
own test file against it. A mutant is *killed* when a test fails, *survived* when every test
passes, *timed out* when the tests run past the limit.

It never edits the work tree: the package and its tests are copied to a temporary folder
and each mutant is written there. To keep a run affordable it

- imports the heavy dependencies (torch, numpy, scipy, pytest) once, then forks one child
  per mutant, which imports the (mutated) package afresh and runs pytest in-process;
- runs the unmutated tests once under a line tracer and gives each mutant only the tests
  that execute its line (a mutant on a line no test runs survives at once).

Mutants that cannot change behaviour are listed, each with one line on why, in
``scripts/mutation_equivalents.toml`` and counted apart; the score is killed over
non-equivalent mutants.

Usage (from the repository root; slow, minutes per module)::

    python scripts/mutation_test.py                       # every module in MODULES
    python scripts/mutation_test.py maze/outcomes.py      # one module (path under mazeinterp/)
    python scripts/mutation_test.py --list maze/grid.py   # list the mutants, run nothing

Exit status: 0 when each module run reaches ``--target`` (default 0.95), 1 when one does
not, 2 for bad arguments (an unknown module, a malformed equivalents file) or when a module's
unmutated tests fail.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"

# module (under mazeinterp/) -> (its test files, the functions to mutate or None for all)
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "maze/outcomes.py": (("tests/maze/test_outcomes.py",), None),
    "maze/grid.py": (("tests/maze/test_grid.py",), None),
    "maze/moves.py": (("tests/maze/test_moves.py",), None),
    "maze/state_rules.py": (("tests/maze/test_state_rules.py", "tests/maze/test_state.py"), None),
    "maze/pixels.py": (("tests/maze/test_pixels.py",), None),
    "analysis/stats.py": (("tests/analysis/test_stats.py",), None),
    "rollout/resume.py": (("tests/rollout/test_resume.py",), None),
    "sweep/config.py": (("tests/sweep/test_sweep_config.py",), None),
    "core/hook_points.py": (("tests/core/test_hook_points.py",), None),
    "analysis/vfield.py": (("tests/analysis/test_vfield.py",),
                           ("first_arrival_probabilities", "mirrored_after", "_check_chain_fields",
                            "outcome_probabilities")),
    "analysis/exact_chain.py": (("tests/analysis/test_exact_chain.py",), None),
}

_COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                  ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                  ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                ast.FloorDiv: ast.Div}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change to one module.

    ``line`` is the 1-based line of the original source, ``code`` that line's text (stripped),
    ``function`` the qualified name of the enclosing function or class ("" at module level),
    ``at_import`` whether the code runs when the module is imported (outside function bodies),
    ``change`` "old -> new" as source text,
    ``start``/``end`` the (line, column) span of the original text that ``new`` replaces.
    """

    line: int
    code: str
    function: str
    at_import: bool
    change: str
    start: tuple[int, int]
    end: tuple[int, int]
    new: str


def _skip_expr_ids(tree: ast.AST) -> set[int]:
    """Ids of nodes not worth mutating: annotations, docstrings and everything inside them."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs,
                        node.args.vararg, node.args.kwarg]:
                if arg is not None:
                    mark(arg.annotation)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.JoinedStr):  # messages: checked by match=, not by mutants
            mark(node)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            mark(node)
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            mark(node)
    return skip


def _variants(node: ast.AST) -> list[ast.AST]:
    """Mutated copies of ``node`` (itself unchanged), one per applicable operator."""
    out: list[ast.AST] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS.get(type(op))
            if swap is not None:
                ops = list(node.ops)
                ops[i] = swap()
                out.append(ast.Compare(left=node.left, ops=ops, comparators=node.comparators))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        out.append(ast.BinOp(left=node.left, op=_BINOP_SWAPS[type(node.op)](), right=node.right))
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(ast.BoolOp(op=other, values=node.values))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(node.operand)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id in ("min", "max")):
        name = "max" if node.func.id == "min" else "min"
        out.append(ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=node.args,
                            keywords=node.keywords))
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        out.append(ast.Constant(value=not node.value))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        out.append(ast.Constant(value=node.value + 1))
    elif isinstance(node, ast.Raise):
        out.append(ast.Pass())
    return out


def find_mutants(source: str, functions: tuple[str, ...] | None = None) -> list[Mutant]:
    """Every mutant of ``source`` (module text), in source order.

    ``functions`` limits them to those top-level functions (and what they contain).
    """
    tree = ast.parse(source)
    skip = _skip_expr_ids(tree)
    lines = source.splitlines()
    in_body = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
               for stmt in (f.body if isinstance(f.body, list) else [f.body]) for n in ast.walk(stmt)}
    mutants: list[Mutant] = []

    def visit(node: ast.AST, qualname: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = f"{qualname}.{node.name}" if qualname else node.name
        inside = functions is None or qualname.split(".")[0] in functions
        if inside and id(node) not in skip and hasattr(node, "lineno"):
            old = ast.get_source_segment(source, node)
            for variant in _variants(node):
                new = ast.unparse(variant)
                if not isinstance(node, ast.stmt):
                    new = f"({new})"
                short_old = " ".join(old.split())
                mutants.append(Mutant(
                    line=node.lineno, code=lines[node.lineno - 1].strip(), function=qualname,
                    at_import=id(node) not in in_body, change=f"{short_old} -> {new}",
                    start=(node.lineno, node.col_offset),
                    end=(node.end_lineno, node.end_col_offset), new=new))
        for child in ast.iter_child_nodes(node):
            visit(child, qualname)

    visit(tree, "")
    mutants.sort(key=lambda m: (m.start, m.change))
    return mutants


def apply_mutant(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant``'s span replaced by its new text (columns are UTF-8 bytes)."""
    lines = source.splitlines(keepends=True)
    (l0, c0), (l1, c1) = mutant.start, mutant.end
    head = lines[l0 - 1].encode()[:c0].decode()
    tail = lines[l1 - 1].encode()[c1:].decode()
    return "".join(lines[:l0 - 1]) + head + mutant.new + tail + "".join(lines[l1:])


def mutant_key(mutant: Mutant) -> tuple[str, str, str]:
    """What names a mutant in the equivalents file: (function, code of its line, change)."""
    return mutant.function, mutant.code, mutant.change


def load_equivalents(path: Path) -> dict[str, set[tuple[str, str, str]]]:
    """Module -> {(function, code, change)} of the listed equivalent mutants.

    Raises ValueError naming the entry when one lacks a field or gives no reason.
    """
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    out: dict[str, set[tuple[str, str, str]]] = {}
    for i, entry in enumerate(data.get("equivalent", [])):
        missing = [k for k in ("module", "code", "change", "why") if not entry.get(k)]
        if missing:
            raise ValueError(f"{path.name}: equivalent #{i + 1} lacks {', '.join(missing)}")
        out.setdefault(entry["module"], set()).add((entry.get("function", ""), entry["code"], entry["change"]))
    return out


def _purge_package() -> None:
    for name in [n for n in sys.modules if n == "mazeinterp" or n.startswith("mazeinterp.")
                 or n == "conftest" or n.startswith("tests.") or n.startswith("test_")]:
        del sys.modules[name]


def _run_pytest_child(copy: Path, args: list[str], plugin: object | None = None) -> int:
    """Run pytest in this (forked) process on the copy; returns pytest's exit code."""
    import pytest

    os.chdir(copy)
    _purge_package()
    if isinstance(plugin, _LineTracer):
        plugin.start()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    return int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
                            "-p", "no:randomly", *args],
                           plugins=[plugin] if plugin is not None else []))


def _fork_run(copy: Path, args: list[str], timeout: float, plugin: object | None = None) -> str:
    """Fork, run pytest in the child; 'killed', 'survived', 'timeout' or 'error'."""
    pid = os.fork()
    if pid == 0:
        try:
            code = _run_pytest_child(copy, args, plugin)
        except BaseException:  # noqa: BLE001 -- any crash in the child is a failed run
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return {0: "survived", 1: "killed"}.get(code, "killed" if code != 5 else "error")
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.02)


AT_IMPORT = "<import>"
"""The tracer's name for lines run while the tests are collected (module imports), before any test."""


class _LineTracer:
    """pytest plugin: which lines of one file each test runs (test node id -> set of lines).

    Lines run during collection are filed under :data:`AT_IMPORT`.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.current = AT_IMPORT
        self.lines: dict[str, set[int]] = {}
        self.all: list[str] = []

    def _trace(self, frame, event, arg):  # noqa: ANN001 -- sys.settrace signature
        if frame.f_code.co_filename != self.filename:
            return None
        if event == "line" or event == "call":
            self.lines.setdefault(self.current, set()).add(frame.f_lineno)
        return self._trace

    def pytest_runtest_setup(self, item) -> None:  # noqa: ANN001
        self.current = item.nodeid

    def start(self) -> None:
        """Trace from now on (before pytest loads the conftest files, which import the package)."""
        import threading
        sys.settrace(self._trace)
        threading.settrace(self._trace)

    def pytest_collection_modifyitems(self, items) -> None:  # noqa: ANN001
        self.all = [i.nodeid for i in items]


def covering_tests(copy: Path, module_path: Path, tests: list[str],
                   timeout: float) -> tuple[dict[str, set[int]], list[str]]:
    """Run the unmutated tests once under the tracer: (test id -> lines, all test ids).

    Raises RuntimeError when the unmutated tests do not pass.
    """
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    pid = os.fork()
    if pid == 0:
        tracer = _LineTracer(str(module_path))
        code = 3
        try:
            code = _run_pytest_child(copy, tests, tracer)
            with out.open("w") as f:
                for nodeid in [AT_IMPORT, *tracer.all]:
                    lines = tracer.lines.get(nodeid, set())
                    f.write(nodeid + "\t" + " ".join(map(str, sorted(lines))) + "\n")
        finally:
            os._exit(code)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise RuntimeError(f"unmutated tests {' '.join(tests)} ran past {timeout:.0f}s")
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"unmutated tests {' '.join(tests)} fail; fix them first")
    per_test: dict[str, set[int]] = {}
    order: list[str] = []
    for row in out.read_text().splitlines():
        nodeid, _, lines = row.partition("\t")
        order.append(nodeid)
        per_test[nodeid] = {int(x) for x in lines.split()}
    out.unlink()
    return per_test, order


def copy_tree(dest: Path) -> None:
    """Copy what the tests need (package, tests, fuzz harnesses, checkpoints, docs, scripts, config) to dest."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", "runs")
    for name in ("mazeinterp", "tests", "fuzzing", "checkpoints", "docs", "scripts"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "conftest.py"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


@dataclasses.dataclass(frozen=True)
class ModuleResult:
    """Counts for one module and the mutants that survived or timed out."""

    module: str
    killed: int
    survived: list[Mutant]
    timed_out: list[Mutant]
    equivalent: int

    @property
    def score(self) -> float:
        """Killed over non-equivalent mutants (timeouts count as killed, as usual)."""
        total = self.killed + len(self.survived) + len(self.timed_out)
        return 1.0 if total == 0 else (self.killed + len(self.timed_out)) / total


def run_module(module: str, equivalents: set[tuple[str, str, str]], copy: Path,
               timeout_factor: float, progress: bool, sample: int | None = None) -> ModuleResult:
    """Mutate ``module`` one change at a time in ``copy`` and run its tests against each.

    ``sample``: run only that many mutants, drawn at random (seed 0), instead of all.
    """
    tests, functions = MODULES[module]
    target = copy / "mazeinterp" / module
    original = target.read_text()
    mutants = find_mutants(original, functions)
    if sample is not None and sample < len(mutants):
        picked = sorted(random.Random(0).sample(range(len(mutants)), sample))
        mutants = [mutants[i] for i in picked]
    t0 = time.monotonic()
    per_test, order = covering_tests(copy, target, list(tests), timeout=900)
    import_lines = per_test.pop(AT_IMPORT, set())
    order.remove(AT_IMPORT)
    baseline = time.monotonic() - t0
    timeout = max(30.0, timeout_factor * baseline)
    killed = equivalent = 0
    survived: list[Mutant] = []
    timed_out: list[Mutant] = []
    try:
        for i, mutant in enumerate(mutants):
            if mutant_key(mutant) in equivalents:
                equivalent += 1
                continue
            lines = set(range(mutant.start[0], mutant.end[0] + 1))
            # code run at import (outside function bodies, or called from there) precedes every test:
            # every test may see it
            everything = mutant.at_import or bool(lines & import_lines)
            selected = [t for t in order if everything or per_test[t] & lines]
            if not selected:
                outcome = "survived"
            else:
                target.write_text(apply_mutant(original, mutant))
                outcome = _fork_run(copy, selected, timeout)
                target.write_text(original)
            if outcome == "survived":
                survived.append(mutant)
            elif outcome == "timeout":
                timed_out.append(mutant)
            else:
                killed += 1
            if progress:
                print(f"\r{module}: {i + 1}/{len(mutants)} ({killed} killed, "
                      f"{len(survived)} survived)", end="", file=sys.stderr, flush=True)
    finally:
        target.write_text(original)
        if progress:
            print(file=sys.stderr)
    for function, code, change in sorted(equivalents - {mutant_key(m) for m in mutants}):
        print(f"warning: {module}: listed equivalent [{function}] {change} in {code!r} matches no mutant",
              file=sys.stderr)
    return ModuleResult(module, killed, survived, timed_out, equivalent)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the modules, print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="paths under mazeinterp/ (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--target", type=float, default=0.95, help="score each module must reach")
    parser.add_argument("--timeout-factor", type=float, default=5.0,
                        help="a mutant times out after this many times the unmutated run")
    parser.add_argument("--sample", type=int, default=None,
                        help="run only this many mutants per module, drawn at random (seed 0)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    modules = args.modules or list(MODULES)
    if args.sample is not None and args.sample < 1:
        print(f"error: --sample must be >= 1, got {args.sample}", file=sys.stderr)
        return 2
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"error: unknown module {unknown[0]!r}; known: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    try:
        equivalents = load_equivalents(EQUIVALENTS)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for module in modules:
            source = (ROOT / "mazeinterp" / module).read_text()
            for m in find_mutants(source, MODULES[module][1]):
                eq = " (equivalent)" if mutant_key(m) in equivalents.get(module, ()) else ""
                print(f"{module}:{m.line} [{m.function}] {m.change}{eq}\n    {m.code}")
        return 0

    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = Path(tmp)
        copy_tree(copy)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")])
        sys.path.insert(0, str(copy))
        # the heavy imports, once; each child then imports only the (mutated) package
        import importlib

        import torch
        torch.set_num_threads(1)
        for name in ("numpy", "pytest", "scipy.stats", "sklearn.linear_model", "matplotlib.pyplot",
                     "hypothesis", "gym3", "procgen"):
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        results = []
        for module in modules:
            try:
                results.append(run_module(module, equivalents.get(module, set()), copy,
                                          args.timeout_factor, not args.no_progress, args.sample))
            except RuntimeError as exc:  # the unmutated tests fail or hang: no score means anything
                print(f"error: {module}: {exc}", file=sys.stderr)
                return 2
    if args.sample is not None:
        print(f"(at most {args.sample} mutants per module, drawn at random)")
    print(f"{'module':<22} {'mutants':>7} {'equiv':>5} {'killed':>6} {'survived':>8} "
          f"{'timeout':>7} {'score':>6}")
    failed = False
    for r in results:
        total = r.killed + len(r.survived) + len(r.timed_out) + r.equivalent
        print(f"{r.module:<22} {total:>7} {r.equivalent:>5} {r.killed:>6} {len(r.survived):>8} "
              f"{len(r.timed_out):>7} {r.score:>6.1%}")
        failed |= r.score < args.target
    for r in results:
        for m in r.survived:
            print(f"survived  {r.module}:{m.line} [{m.function}] {m.change}\n    {m.code}")
        for m in r.timed_out:
            print(f"timed out {r.module}:{m.line} [{m.function}] {m.change}\n    {m.code}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
