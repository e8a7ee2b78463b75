"""scripts/mutation_test.py: the mutants it makes, how it writes them, and its list of equivalent mutants."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mt():
    spec = importlib.util.spec_from_file_location("mutation_test", ROOT / "scripts" / "mutation_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_test"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["mutation_test"]


SOURCE = '''"""Docstring: 1 < 2 is not mutated."""
LIMIT: int = 3


def f(x: int = 0) -> bool:
    """Also not mutated: a and b."""
    if x < LIMIT and not x == 1:
        raise ValueError(f"bad {x + 1}")
    return min(x - 1, 2) > 0
'''


def test_it_makes_one_mutant_per_operator_and_skips_docstrings_annotations_and_messages(mt) -> None:
    changes = [(m.line, m.function, m.change) for m in mt.find_mutants(SOURCE)]
    assert changes == [
        (2, "", "3 -> (4)"),
        (5, "f", "0 -> (1)"),
        (7, "f", "x < LIMIT -> (x <= LIMIT)"),
        (7, "f", "x < LIMIT and not x == 1 -> (x < LIMIT or not x == 1)"),
        (7, "f", "not x == 1 -> (x == 1)"),
        (7, "f", "x == 1 -> (x != 1)"),
        (7, "f", "1 -> (2)"),
        (8, "f", 'raise ValueError(f"bad {x + 1}") -> pass'),
        (9, "f", "min(x - 1, 2) -> (max(x - 1, 2))"),
        (9, "f", "min(x - 1, 2) > 0 -> (min(x - 1, 2) >= 0)"),
        (9, "f", "x - 1 -> (x + 1)"),
        (9, "f", "1 -> (2)"),
        (9, "f", "2 -> (3)"),
        (9, "f", "0 -> (1)"),
    ]
    assert [m.change for m in mt.find_mutants(SOURCE, functions=("g",))] == []
    # the constant and f's default run at import (every test may see them); f's body runs in the tests
    assert [m.line for m in mt.find_mutants(SOURCE) if m.at_import] == [2, 5]


def test_a_mutant_replaces_exactly_its_span(mt) -> None:
    mutants = {m.change: m for m in mt.find_mutants(SOURCE)}
    mutated = mt.apply_mutant(SOURCE, mutants["x - 1 -> (x + 1)"])
    assert mutated.splitlines()[8] == "    return min((x + 1), 2) > 0"
    assert mutated.replace("(x + 1)", "x - 1") == SOURCE
    raised = mt.apply_mutant(SOURCE, mutants['raise ValueError(f"bad {x + 1}") -> pass'])
    namespace: dict = {}
    exec(compile(raised, "<mutant>", "exec"), namespace)
    assert namespace["f"](0) is False  # no error raised any more


def test_the_committed_equivalents_each_say_why_and_a_bad_entry_is_refused(mt, tmp_path: Path) -> None:
    listed = mt.load_equivalents(mt.EQUIVALENTS)
    assert listed and set(listed) <= set(mt.MODULES)
    bad = tmp_path / "eq.toml"
    bad.write_text('[[equivalent]]\nmodule = "analysis/stats.py"\ncode = "x = 1"\nchange = "1 -> (2)"\n')
    with pytest.raises(ValueError, match=r"eq.toml: equivalent #1 lacks why"):
        mt.load_equivalents(bad)
    assert mt.load_equivalents(tmp_path / "missing.toml") == {}


def test_every_listed_module_and_test_file_exists(mt) -> None:
    for module, (tests, functions) in mt.MODULES.items():
        source = (ROOT / "mazeinterp" / module).read_text()
        assert all((ROOT / t).is_file() for t in tests), module
        if functions is not None:  # each named function is there and has mutants
            found = {m.function.split(".")[0] for m in mt.find_mutants(source, functions)}
            assert found == set(functions), module


def test_the_copy_holds_what_the_tests_import(mt, tmp_path: Path) -> None:
    mt.copy_tree(tmp_path)
    assert (tmp_path / "fuzzing" / "states.py").is_file()  # tests/maze/test_state.py imports the state fuzz harness
    assert (tmp_path / "tests" / "conftest.py").is_file() and (tmp_path / "pyproject.toml").is_file()
