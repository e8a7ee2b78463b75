"""Shared fixtures: the tiny model, the tiny checkpoint, the shipped agent and the mazes the tests play.

Small procgen envs are built once per test session; models and checkpoints once per test module.
A test module may override a fixture of the same name (``state`` in the steering and vector-field tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mazeinterp.maze import grid
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.grid import parse_ascii
from mazeinterp.maze.state import MazeState


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests use tiny models: one torch thread avoids thread hand-off costs that dominate them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def seeded_states() -> list[MazeState]:
    """Start states of level seeds 0…63 (a mix of maze sizes)."""
    with MazeEnv.from_seeds(range(64)) as env:
        return env.get_states()


@pytest.fixture(scope="session")
def big_state(seeded_states: list[MazeState]) -> MazeState:
    """A start state whose inner maze is at least 15×15, with its cheese off the top-right cell."""
    for state in seeded_states:
        n = state.maze_size
        if n >= 15 and state.cheese != (0, n - 1):
            return state
    raise AssertionError("no large maze among seeds 0…63")


@pytest.fixture(scope="session")
def hand_maze(seeded_states: list[MazeState]) -> MazeState:
    """A hand-made 5×5 maze, mouse at (4, 0), cheese at (0, 4) (its oracle moves are worked out in test_imitate)."""
    base = next(s for s in seeded_states if s.maze_size == 5)
    layout, cheese = parse_ascii("""
        ..#.C
        .##.#
        .....
        .#.#.
        ..#..
    """)
    return base.with_layout(layout, cheese)


@pytest.fixture(scope="module")
def state(seeded_states: list[MazeState]) -> MazeState:
    """A 7×7 maze with a decision square, the mouse at the start."""
    return next(s for s in seeded_states if s.maze_size == 7 and grid.decision_square(s.open_cells, s.cheese))


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def model():
    """A random scale-1 policy (seed 0) in eval mode."""
    from mazeinterp.core.model import ImpalaPolicy

    torch.manual_seed(0)
    return ImpalaPolicy(scale=1).eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint file of a random scale-1 policy (seed 0), for the CLI."""
    from mazeinterp.checkpoints.registry import save_policy
    from mazeinterp.core.model import ImpalaPolicy

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_policy(ImpalaPolicy(scale=1), path, metadata={"note": "random weights for CLI tests"})
    return path


@pytest.fixture(scope="module")
def agent():
    """The shipped default agent."""
    from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy

    return load_policy(DEFAULT_AGENT)


@pytest.fixture()
def validations(monkeypatch) -> list:
    """Every intervention that :func:`mazeinterp.core.interventions.validate` checks during the test, in order."""
    from mazeinterp.core import interventions

    seen: list = []
    check = interventions.validate

    def counting(model, intervention) -> None:
        seen.append(intervention)
        check(model, intervention)

    monkeypatch.setattr(interventions, "validate", counting)
    return seen


@pytest.fixture()
def local_ray():
    """A local Ray cluster of 2 CPUs for one test (shut down afterwards)."""
    import ray

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # Ray gives its raylet 30 s to register: too short on an overloaded machine
        if "timed out during startup" not in str(exc):
            raise
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
