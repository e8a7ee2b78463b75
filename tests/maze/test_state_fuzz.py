"""States that can never kill the interpreter: mutated real states, each tried in a child process.

procgen dies (fatal assert, segfault) or hangs on a state it cannot hold, so
every state the parser accepts is set into an env inside a
:class:`~fuzzing.states.Sandbox` child process: a crash there is a
test failure, not a dead test session.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing.states import KINDS, FuzzCounts, Sandbox, check_blob, inconsistencies, mutate
from mazeinterp.maze.state import MazeState

_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(timeout_s=60)
    yield box
    box.close()


@pytest.fixture(scope="module")
def blobs(seeded_states: list[MazeState]) -> list[bytes]:
    states = list(seeded_states[:24])
    states += [s.without_cheese().with_mouse_reflected(True) for s in seeded_states[24:32]]
    return [s.to_bytes() for s in states]


@settings(max_examples=80, deadline=None, suppress_health_check=_FIXTURES)
@given(which=st.integers(0, 31), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_a_mutated_state_is_refused_or_is_safe_and_consistent(which, kind, seed, blobs, sandbox) -> None:
    blob, note = mutate(blobs[which], np.random.default_rng(seed), kind)
    counts = FuzzCounts()
    check_blob(blob, note, sandbox, counts)
    assert counts.failures == 0, counts.examples


_CELLS = st.one_of(
    st.tuples(st.integers(-3, 27), st.integers(-3, 27)),
    st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)),
    st.none(), st.integers(), st.text(max_size=2), st.tuples(st.integers(0, 5)),
)
_EDITS = ("with_cheese", "with_mouse", "with_open", "with_wall", "without_cheese", "with_mouse_reflected",
          "with_game_fields")
_GAME_VALUES = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=2), st.none(),
                         st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(which=st.integers(0, 31),
       edits=st.lists(st.tuples(st.sampled_from(_EDITS), _CELLS, st.sampled_from(
           ["cur_time", "timeout", "current_level_seed", "action", "done", "reward", "grid_size", "nonsense"]),
           _GAME_VALUES), min_size=1, max_size=5))
def test_any_sequence_of_edits_gives_a_clear_error_or_a_safe_state(which, edits, blobs, sandbox) -> None:
    """Edits with any arguments raise ValueError (InvalidStateError is one) or give a state procgen runs."""
    state = MazeState.from_bytes(blobs[which])
    for name, cell, field, value in edits:
        try:
            if name == "without_cheese":
                state = state.without_cheese()
            elif name == "with_mouse_reflected":
                state = state.with_mouse_reflected(bool(value))
            elif name == "with_game_fields":
                state = state.with_game_fields(**{field: value})
            else:
                state = getattr(state, name)(cell)
        except ValueError:
            continue
    assert inconsistencies(state) == []
    answer, detail = sandbox.try_state(state.to_bytes())
    assert answer == "ok", (answer, detail)
    assert detail == state.to_bytes()


def test_the_sandbox_reports_a_killed_interpreter_instead_of_dying(blobs, sandbox) -> None:
    """The fuzz's detector works: bytes written past every check kill the child only, which is replaced."""
    assert sandbox.try_state(b"\x01\x02") == ("refused", sandbox.try_state(b"\x01\x02")[1])
    answer, _ = sandbox.try_state(b"\x01\x02", raw=True)  # procgen: fatal assert in its buffer reader
    assert answer in ("died", "hung")
    assert sandbox.try_state(blobs[1])[0] == "ok", "a fresh child takes over"
