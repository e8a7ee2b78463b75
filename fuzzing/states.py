"""Mutating real maze states and trying them on procgen in a child process: the machinery of the state fuzz.

procgen kills the interpreter on a state it cannot hold, so the promise of
:mod:`mazeinterp.maze.state_rules` -- no sequence of public calls on states
kills, hangs or crashes the interpreter -- is checked by handing every state
the parser accepts to a :class:`Sandbox`: a child process that sets it into a
:class:`~mazeinterp.maze.env.MazeEnv`, observes, steps and reads it back under a
timeout. A crash or hang of the child is recorded, never suffered.

* :func:`mutate` -- one mutation of a state blob (a field set to a boundary or
  random value, a NaN, a bit flip, a cell code, a string edit, a cut...);
* :func:`inconsistencies` -- an accepted state's internal contradictions, computed
  from the raw world grid and mouse entity, independently of the rules;
* :class:`Sandbox` -- the child process;
* :func:`fuzz` -- both together over many mutated states, returning :class:`FuzzCounts`.

Used by the property tests (``tests/maze/test_state_fuzz.py``) and by ``scripts/fuzz_states.py``.
"""

from __future__ import annotations

import math
import multiprocessing
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mazeinterp.maze.state import (
    BASIC_FIELDS, CHEESE, ENTITY_FIELDS, GAME_FIELDS, MAZE_FIELDS, WALL, InvalidStateError, MazeState,
)

_INT = struct.Struct("<i")
_FLOAT = struct.Struct("<f")

INTERESTING_INTS = (0, 1, -1, 2, 3, 4, 5, 9, 10, 14, 15, 16, 24, 25, 26, 51, 100, 624, 625, 10_000,
                    2**31 - 1, -(2**31), 2**16)
INTERESTING_FLOATS = (math.nan, math.inf, -math.inf, -1.86e-09, 0.0, -0.0, 1e30, -1.0, 0.5, 1.0, 12.5, 24.5,
                      25.5, -0.5, 3.4e38, 1e-45)
KINDS = ("int", "float", "bitflip", "cell", "string", "cut", "header", "several")


@dataclass(frozen=True)
class Slot:
    """One serialized field of a blob: its name, kind (``i``, ``f``, ``s``) and byte offset."""

    name: str
    kind: str
    offset: int
    size: int


def field_slots(blob: bytes) -> list[Slot]:
    """Every field of a valid state blob with its byte offset (strings: the offset of their length)."""
    slots: list[Slot] = []
    offset = 0

    def walk(fields: Sequence[tuple[str, str]], prefix: str) -> None:
        nonlocal offset
        for name, kind in fields:
            if kind == "s":
                size = 4 + _INT.unpack_from(blob, offset)[0]
            else:
                size = 4
            slots.append(Slot(f"{prefix}.{name}", kind, offset, size))
            offset += size

    walk(GAME_FIELDS, "game")
    slots.append(Slot("entity count", "i", offset, 4))
    n_entities = _INT.unpack_from(blob, offset)[0]
    offset += 4
    for _ in range(n_entities):
        walk(ENTITY_FIELDS, "mouse")
    walk(BASIC_FIELDS, "basic")
    for name in ("world w", "world h", "world cells"):
        slots.append(Slot(name, "i", offset, 4))
        offset += 4
    w, h = _INT.unpack_from(blob, offset - 12)[0], _INT.unpack_from(blob, offset - 8)[0]
    slots.append(Slot("world", "w", offset, 4 * w * h))
    offset += 4 * w * h
    walk(MAZE_FIELDS, "maze")
    return slots


def _put(blob: bytearray, offset: int, kind: str, value: float) -> None:
    if kind == "f":
        blob[offset : offset + 4] = _FLOAT.pack(value) if abs(value) < 3.5e38 or not math.isfinite(value) \
            else _FLOAT.pack(math.copysign(math.inf, value))
    else:
        blob[offset : offset + 4] = _INT.pack(int(value))


def mutate(blob: bytes, rng: np.random.Generator, kind: str | None = None,
           slots: list[Slot] | None = None) -> tuple[bytes, str]:
    """One mutation of a valid state blob; returns ``(mutated blob, description)``.

    ``kind`` (one of :data:`KINDS`, default drawn at random) chooses what is
    changed; ``slots`` are the blob's :func:`field_slots` (computed if not given).
    """
    slots = slots if slots is not None else field_slots(blob)
    kind = kind or str(rng.choice(KINDS))
    out = bytearray(blob)
    numbers = [s for s in slots if s.kind in "if"]
    if kind == "several":
        notes = []
        for _ in range(int(rng.integers(2, 5))):
            # these kinds keep every field at its offset, so the original slots stay right
            out_bytes, note = mutate(bytes(out), rng, str(rng.choice(("int", "float", "cell"))), slots)
            out = bytearray(out_bytes)
            notes.append(note)
        return bytes(out), "; ".join(notes)
    if kind in ("int", "float"):
        slot = numbers[int(rng.integers(len(numbers)))]
        old = (_INT if slot.kind == "i" else _FLOAT).unpack_from(blob, slot.offset)[0]
        if kind == "int":
            choices = [*INTERESTING_INTS, old + 1, old - 1, int(rng.integers(-(2**31), 2**31))]
        else:
            choices = [*INTERESTING_FLOATS, old * 2, old + 1e-6, float(rng.normal() * 30)]
        value = choices[int(rng.integers(len(choices)))]
        _put(out, slot.offset, "i" if kind == "int" else "f", value)
        return bytes(out), f"{slot.name} <- {value!r} ({kind})"
    if kind == "bitflip":
        # most bytes belong to the random-generator strings: flip inside numbers half of the time
        if rng.random() < 0.5:
            slot = numbers[int(rng.integers(len(numbers)))]
            byte = slot.offset + int(rng.integers(4))
        else:
            byte = int(rng.integers(len(out)))
        bit = int(rng.integers(8))
        out[byte] ^= 1 << bit
        return bytes(out), f"bit {bit} of byte {byte} flipped"
    if kind == "cell":
        world = next(s for s in slots if s.name == "world")
        cell = int(rng.integers(world.size // 4))
        codes = [CHEESE, WALL, 100, 0, 1, -1, 3, 10_000, 2**31 - 1]
        code = codes[int(rng.integers(len(codes)))]
        _put(out, world.offset + 4 * cell, "i", code)
        return bytes(out), f"world cell {cell} <- {code}"
    if kind == "string":
        strings = [s for s in slots if s.kind == "s"]
        slot = strings[int(rng.integers(len(strings)))]
        choice = int(rng.integers(4))
        if choice == 0:  # change the length prefix
            value = int(rng.choice([0, -1, slot.size - 5, slot.size - 3, 2**31 - 1]))
            _put(out, slot.offset, "i", value)
            return bytes(out), f"{slot.name} length <- {value}"
        start = slot.offset + 4 + int(rng.integers(max(slot.size - 4, 1)))
        if choice == 1:
            new = bytes([int(rng.choice(list(b"x -09.\0")))])
            out[start : start + 1] = new
            return bytes(out), f"{slot.name} byte {start} <- {new!r}"
        if choice == 2:  # zero every state word of a generator
            text = b" ".join([b"0"] * 624 + [b"624"])
            out[slot.offset : slot.offset + slot.size] = _INT.pack(len(text)) + text
            return bytes(out), f"{slot.name} <- all-zero generator"
        index = int(rng.choice([625, 1000, 2**31 - 1]))
        body = bytes(out[slot.offset + 4 : slot.offset + slot.size]).rsplit(b" ", 1)[0] + b" %d" % index
        out[slot.offset : slot.offset + slot.size] = _INT.pack(len(body)) + body
        return bytes(out), f"{slot.name} index <- {index}"
    if kind == "cut":
        if rng.random() < 0.5:
            at = int(rng.integers(len(out)))
            return bytes(out[:at]), f"cut at byte {at}"
        extra = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        return bytes(out) + extra, f"{len(extra)} bytes appended"
    if kind == "header":
        names = ("entity count", "world w", "world h", "world cells", "maze.maze_dim", "maze.world_dim",
                 "game.grid_size", "basic.main_width")
        name = names[int(rng.integers(len(names)))]
        slot = next(s for s in slots if s.name == name)
        value = int(rng.choice([0, 1, 2, 5, 13, 15, 24, 26, 625, 2**31 - 1, -1]))
        _put(out, slot.offset, "i", value)
        return bytes(out), f"{slot.name} <- {value}"
    raise ValueError(f"unknown mutation kind {kind!r}; expected one of {KINDS}")


def inconsistencies(state: MazeState) -> list[str]:
    """Contradictions inside an accepted state, read from its raw world grid and mouse entity.

    Independent of :mod:`~mazeinterp.maze.state_rules`: it checks what the
    views promise (the cheese and mouse they report are the world's, the
    padding is wall) rather than field-by-field ranges.
    """
    problems = []
    world = state.world
    n = state.maze_size
    if world.ndim != 2 or world.shape[0] != world.shape[1] or world.shape[0] != state.maze[1]:
        problems.append(f"world shape {world.shape} vs world_dim {state.maze[1]}")
        return problems
    if not (n % 2 == 1 and 3 <= n <= world.shape[0]):
        problems.append(f"maze_dim {n} does not fit a {world.shape[0]}-wide world")
        return problems
    if not set(np.unique(world).tolist()) <= {CHEESE, WALL, 100}:
        problems.append(f"unknown cell codes {sorted(set(np.unique(world).tolist()) - {CHEESE, WALL, 100})}")
    cheeses = np.argwhere(state.world_grid == CHEESE)
    inner_cheeses = np.argwhere(state.inner_grid == CHEESE)
    if len(cheeses) > 1 or len(cheeses) != len(inner_cheeses):
        problems.append(f"{len(cheeses)} cheese cells in the world, {len(inner_cheeses)} in the inner maze")
    reported = state.cheese
    if (reported is None) != (len(cheeses) == 0):
        problems.append(f"cheese reported as {reported} with {len(cheeses)} cheese cells in the world")
    x, y = (float(v) for v in state.entities[0][:2])
    if not (math.isfinite(x) and math.isfinite(y)):
        problems.append(f"mouse at non-finite ({x}, {y})")
        return problems
    row, col = state.mouse
    if not (0 <= row < n and 0 <= col < n):
        problems.append(f"mouse cell {(row, col)} outside the {n}×{n} inner maze")
    elif state.inner_grid[row, col] == WALL:
        problems.append(f"mouse cell {(row, col)} is a wall")
    elif reported == (row, col):
        problems.append(f"mouse stands on the cheese {(row, col)}")
    floats = [v for v in (*state.game, *state.entities[0], *state.basic) if isinstance(v, float)]
    if not all(math.isfinite(v) for v in floats):
        problems.append("a non-finite float")
    return problems


# --------------------------------------------------------------------------------------
# the child process


def _child(conn: Any, steps: int) -> None:
    """Loop of the sandbox process: set each blob received, observe, step, read back; reply with the result."""
    import torch

    torch.set_num_threads(1)
    from mazeinterp.maze.env import MazeEnv

    env = MazeEnv(2)
    rng = np.random.default_rng(0)
    conn.send(("ready", None))
    while True:
        message = conn.recv()
        if message is None:
            break
        blob, raw = message
        try:
            other = env.get_state_bytes(1)
            if raw:  # past every check, straight into procgen (to show what the checks prevent)
                env._env.call_c_func("set_state", 0, blob, len(blob))
            else:
                env.set_state(0, blob)
            back = env.get_state_bytes(0)
            env.observe()
            for _ in range(steps):
                env.step(rng.integers(0, 15, env.num))
            MazeState.from_bytes(env.get_state_bytes(0))
            env.set_state(1, other)
            conn.send(("ok", back))
        except InvalidStateError as exc:
            conn.send(("refused", str(exc)))
    env.close()


class Sandbox:
    """A child process holding a :class:`~mazeinterp.maze.env.MazeEnv`, for states that might kill procgen.

    :meth:`try_state` sends a blob; the child calls ``MazeEnv.set_state``,
    ``observe``, a few random steps and ``get_state``. The answer is
    ``("ok", procgen's own bytes of the state right after set_state)``,
    ``("refused", message)``, ``("died", exit code)`` or ``("hung", seconds)``;
    after a death or hang the child is replaced.
    """

    def __init__(self, timeout_s: float = 20.0, steps: int = 3) -> None:
        self.timeout_s = timeout_s
        self.steps = steps
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_child, args=(child, self.steps), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(120) or parent.recv()[0] != "ready":
            raise RuntimeError("the sandbox process did not start")

    def try_state(self, blob: bytes, raw: bool = False) -> tuple[str, Any]:
        """Run ``blob`` through the child; see the class docstring for the answers.

        ``raw=True`` hands the bytes to procgen without any check (to demonstrate a crash safely).
        """
        if self._process is None or not self._process.is_alive():
            self._start()
        try:
            self._conn.send((bytes(blob), raw))
            if self._conn.poll(self.timeout_s):
                return self._conn.recv()
        except (EOFError, ConnectionError):
            pass
        if self._process.is_alive():
            self._stop()
            return "hung", self.timeout_s
        self._process.join()
        code = self._process.exitcode
        self._process = None
        return "died", code

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._process = None

    def close(self) -> None:
        """End the child process."""
        if self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
                self._process.join(5)
            except (BrokenPipeError, OSError):
                pass
        self._stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# the fuzz


@dataclass
class FuzzCounts:
    """What a fuzz run saw."""

    mutated: int = 0
    """Mutated states tried."""
    refused: int = 0
    """Refused by the parser with :class:`InvalidStateError`."""
    accepted: int = 0
    """Accepted by the parser (then run in the sandbox)."""
    parser_crashes: int = 0
    """Parser failures with another exception type (a bug)."""
    deaths: int = 0
    """Accepted states that killed the child interpreter."""
    hangs: int = 0
    """Accepted states that hung the child past the timeout."""
    refused_by_env: int = 0
    """Accepted states that ``MazeEnv.set_state`` refused (a disagreement between the two; a bug)."""
    inconsistent: int = 0
    """Accepted states with an internal contradiction, or that procgen reads back differently."""
    examples: list[str] = field(default_factory=list)
    """Descriptions of the first few failures."""

    @property
    def failures(self) -> int:
        """Every count that must be zero."""
        return self.parser_crashes + self.deaths + self.hangs + self.refused_by_env + self.inconsistent

    def __str__(self) -> str:
        lines = [f"mutated states                 {self.mutated}",
                 f"refused by the parser          {self.refused}",
                 f"accepted                       {self.accepted}",
                 f"parser crashes (other errors)  {self.parser_crashes}",
                 f"interpreter deaths             {self.deaths}",
                 f"interpreter hangs              {self.hangs}",
                 f"accepted, refused by set_state {self.refused_by_env}",
                 f"inconsistent states accepted   {self.inconsistent}"]
        lines += [f"  e.g. {e}" for e in self.examples]
        return "\n".join(lines)


def check_blob(blob: bytes, note: str, sandbox: Sandbox, counts: FuzzCounts) -> None:
    """Parse one mutated blob; if accepted, check it for contradictions and run it in ``sandbox``."""
    counts.mutated += 1

    def fail(what: str) -> None:
        if len(counts.examples) < 10:
            counts.examples.append(f"{what}: {note}")

    try:
        state = MazeState.from_bytes(blob)
    except InvalidStateError:
        counts.refused += 1
        return
    except Exception as exc:  # noqa: BLE001 -- any other error type is what is being counted
        counts.parser_crashes += 1
        fail(f"parser raised {type(exc).__name__}: {exc}")
        return
    counts.accepted += 1
    try:
        problems = inconsistencies(state)
    except Exception as exc:  # noqa: BLE001 -- views that fail on an accepted state are a contradiction too
        problems = [f"its views fail ({type(exc).__name__}: {exc})"]
    answer, detail = sandbox.try_state(blob)
    if answer == "died":
        counts.deaths += 1
        fail(f"interpreter died (exit {detail})")
    elif answer == "hung":
        counts.hangs += 1
        fail(f"interpreter hung past {detail} s")
    elif answer == "refused":
        counts.refused_by_env += 1
        fail(f"set_state refused an accepted state ({detail})")
    elif detail != state.to_bytes():
        problems.append("procgen reads the state back differently")
    if problems:
        counts.inconsistent += 1
        fail("inconsistent: " + "; ".join(problems))


def fuzz(states: Sequence[MazeState], n: int, seed: int = 0, sandbox: Sandbox | None = None) -> FuzzCounts:
    """Mutate ``n`` states drawn from ``states`` (once each) and check every accepted one in a sandbox."""
    rng = np.random.default_rng(seed)
    counts = FuzzCounts()
    own = sandbox is None
    sandbox = sandbox or Sandbox()
    try:
        for _ in range(n):
            base = states[int(rng.integers(len(states)))].to_bytes()
            blob, note = mutate(base, rng)
            check_blob(blob, note, sandbox, counts)
    finally:
        if own:
            sandbox.close()
    return counts


def with_raw_field(blob: bytes, name: str, value: float, index: int = 0) -> bytes:
    """``blob`` with the number field ``name`` (a :func:`field_slots` name, e.g. ``"mouse.image_type"``,
    ``"maze.maze_dim"``) overwritten in place; ``index`` picks a world cell when ``name == "world"``."""
    slot = next((s for s in field_slots(blob) if s.name == name), None)
    if slot is None:
        raise KeyError(f"no field {name!r} in the blob")
    out = bytearray(blob)
    if slot.kind == "w":
        _put(out, slot.offset + 4 * index, "i", value)
    elif slot.kind in "if":
        _put(out, slot.offset, slot.kind, value)
    else:
        raise ValueError(f"{name!r} is a string field")
    return bytes(out)
