"""Every ``>>>`` example in the package's docstrings runs and prints what it shows.

The examples share a few names, provided here as a reader of the docs would have
them: ``model`` (the shipped default agent), ``state`` (the start of level seed 0),
``states`` (level seeds 0…7), ``x`` (their network input), ``hook`` (the steering layer).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mazeinterp

MODULES = sorted(m.name for m in pkgutil.walk_packages(mazeinterp.__path__, "mazeinterp."))


@pytest.fixture(scope="module")
def shared_names() -> dict[str, object]:
    import numpy as np
    import torch

    from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
    from mazeinterp.core.hooks import render_states
    from mazeinterp.core.model import obs_to_tensor
    from mazeinterp.rollout import load_mazes
    from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK

    states = load_mazes(range(8))
    return {"model": load_policy(DEFAULT_AGENT), "state": states[0], "states": states,
            "x": obs_to_tensor(render_states(states[:2])), "hook": DEFAULT_STEERING_HOOK,
            "torch": torch, "np": np}


def _examples(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
            if t.name.startswith(module_name) and t.examples]


DOCTESTS = [(name, t.name) for name in MODULES for t in _examples(name)]


def test_the_package_has_examples() -> None:
    assert len(DOCTESTS) >= 20


@pytest.mark.parametrize("module_name, test_name", DOCTESTS, ids=[t for _, t in DOCTESTS])
def test_docstring_example(module_name: str, test_name: str, shared_names, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    test = next(t for t in _examples(module_name) if t.name == test_name)
    test.globs = {**test.globs, **shared_names}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


def test_the_documents_the_package_names_exist() -> None:
    """Every ``*.md`` file a module's text names is in the repository: a path from its root, or a bare file name
    at the root or in a top-level folder."""
    import re
    from pathlib import Path

    package = Path(mazeinterp.__file__).parent
    root = package.parent
    missing = []
    for path in sorted(package.rglob("*.py")):
        for name in sorted(set(re.findall(r"[\w./-]+\.md\b", path.read_text()))):
            found = (root / name).is_file() or ("/" not in name and any(root.glob(f"*/{name}")))
            if not found:
                missing.append(f"{path.relative_to(root)}: {name}")
    assert missing == []
