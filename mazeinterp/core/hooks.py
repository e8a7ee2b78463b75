"""Reading and editing activations: the activation cache and the intervention context.

Hook points are the ``<module path>_out`` names of
:meth:`mazeinterp.core.model.ImpalaPolicy.hook_points`. Hooks exist only inside
:func:`intervene` / :func:`run_with_cache` and are always removed on exit,
also when the body raises. :func:`run_batched_with_cache` (and
:func:`activations`, for one hook point) runs many maze states or observations
in batches: every part of the package that needs activations of many inputs
goes through it.

Per-example activation shapes: the table in :mod:`mazeinterp.core.model`
(``model.hook_points()`` gives them for one model); a cache puts the batch
dimension B first.

Quick tour::

    >>> from mazeinterp.core.hooks import run_with_cache, intervene
    >>> from mazeinterp.core.interventions import ZeroAblate
    >>> (logits, value), cache = run_with_cache(model, x, ["embedder.relu3_out"])
    >>> cache["embedder.relu3_out"].shape              # x: 2 observations; the scale-1 agent
    torch.Size([2, 32, 8, 8])
    >>> with intervene(model, [ZeroAblate("embedder.relu3_out", channels=[21])]):
    ...     logits, value = model(x)
"""

from __future__ import annotations

import atexit
import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch
from torch import Tensor, nn

from mazeinterp.runtime.defaults import FORWARD_BATCH_SIZE
from mazeinterp.core.interventions import Intervention, validate_interventions
from mazeinterp.core.model import HOOK_SUFFIX, ImpalaPolicy, obs_to_tensor
from mazeinterp.core.numerics import as_network_input, check_reference_weights

if TYPE_CHECKING:
    from mazeinterp.maze.env import StateRenderer
    from mazeinterp.maze.state import MazeState

__all__ = [
    "ActivationCache",
    "activations",
    "can_forward_from",
    "forward_from",
    "intervene",
    "modules_after",
    "render_states",
    "run_batched_with_cache",
    "run_states_with_cache",
    "run_with_cache",
    "to_model_input",
]


class ActivationCache(Mapping[str, Tensor]):
    """Read-only mapping: hook point name → detached activation tensor.

    Shapes: (B, C, H, W) for map hook points, (B, F) for vector ones (see the
    module docstring for every hook point's C, H, W or F). Activations are
    recorded *after* any intervention at that hook point.

    >>> _, cache = run_with_cache(model, x, ["embedder.block2.res1.resadd_out"], stop_early=True)
    >>> cache["embedder.block2.res1.resadd_out"].shape
    torch.Size([2, 32, 16, 16])
    """

    def __init__(self, activations: Mapping[str, Tensor]) -> None:
        self._acts = dict(activations)

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self._acts[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self._acts), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"hook point {name!r} is not in this cache (it holds {len(self._acts)} "
                           f"hook points){hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Hook point → full shape (batch first)."""
        return {k: tuple(v.shape) for k, v in self._acts.items()}

    def to(self, device: str | torch.device) -> ActivationCache:
        """A copy with every tensor on ``device``."""
        return ActivationCache({k: v.to(device) for k, v in self._acts.items()})

    def __repr__(self) -> str:
        body = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._acts.items())
        return f"ActivationCache({body})"


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def to_model_input(model: nn.Module, x: Tensor | np.ndarray) -> Tensor:
    """The network input for ``x``, on the model's device.

    ``x``: uint8 observations (B, 64, 64, 3) (numpy or torch), converted by
    :func:`mazeinterp.core.model.obs_to_tensor`; or a float tensor (B, 3, 64, 64),
    taken as it is. Returns float (B, 3, 64, 64).

    Raises:
        TypeError: ``x`` is neither a tensor nor a numpy array.
    """
    device = _device_of(model)
    if isinstance(x, np.ndarray) or (isinstance(x, Tensor) and x.dtype == torch.uint8):
        return obs_to_tensor(x, device=device)
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor or numpy observations, got {type(x).__name__}")
    return x.to(device) if x.device != device else x


@contextmanager
def intervene(model: ImpalaPolicy, interventions: Sequence[Intervention] | Intervention) -> Iterator[None]:
    """Apply ``interventions`` to every forward pass of ``model`` inside the ``with`` block.

    Each intervention is validated first (:func:`mazeinterp.core.interventions.validate`;
    ValueError if it does not fit), unless ``interventions`` come from
    :func:`~mazeinterp.core.interventions.validate_interventions` for this model (the
    caller checked them once). One forward hook per hook point is
    registered and ALWAYS removed on exit, also when the body raises.

    Composition order: interventions at the same hook point apply in the order
    given -- ``[a, b]`` computes ``b(a(act))`` -- and interventions at different
    hook points compose within one forward pass (a later layer sees the edited
    earlier layer). Nested ``intervene`` blocks apply the outer block's edits
    first.

    >>> from mazeinterp.core.interventions import AddVector, Clamp
    >>> vec = torch.ones(model.hook_points()[hook])
    >>> with intervene(model, [AddVector(hook, vec, -1.0), Clamp(hook, 5.5, channels=[15])]):
    ...     logits, _ = model(x)
    >>> logits.shape
    torch.Size([2, 15])
    """
    ivs = validate_interventions(model, interventions)
    by_hook: dict[str, list[Intervention]] = {}
    for iv in ivs:
        by_hook.setdefault(iv.hook, []).append(iv)

    def make_hook(chain: list[Intervention]):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
            for iv in chain:
                output = iv(output)
            # an edit may return another memory layout; the next layers keep the pass's own
            return as_network_input(output)

        return hook

    handles = []
    try:
        for name, chain in by_hook.items():
            handles.append(model.module_for_hook(name).register_forward_hook(make_hook(chain)))
        yield
    finally:
        for handle in handles:
            handle.remove()


class _StopForward(Exception):
    """Raised inside the last needed hook to end a forward pass early."""


@overload
def run_with_cache(model: ImpalaPolicy, x: Tensor | np.ndarray, hook_points: Sequence[str] | None = None, *,
                   stop_early: Literal[False] = False, interventions: Sequence[Intervention] = ()
                   ) -> tuple[tuple[Tensor, Tensor], ActivationCache]: ...
@overload
def run_with_cache(model: ImpalaPolicy, x: Tensor | np.ndarray, hook_points: Sequence[str] | None = None, *,
                   stop_early: bool, interventions: Sequence[Intervention] = ()
                   ) -> tuple[tuple[Tensor, Tensor] | None, ActivationCache]: ...
def run_with_cache(
    model: ImpalaPolicy,
    x: Tensor | np.ndarray,
    hook_points: Sequence[str] | None = None,
    *,
    stop_early: bool = False,
    interventions: Sequence[Intervention] = (),
) -> tuple[tuple[Tensor, Tensor] | None, ActivationCache]:
    """Run ``model`` on ``x`` and record the activations at ``hook_points``.

    Args:
        model: the policy.
        x: float input (B, 3, 64, 64) in [0, 1], or uint8 observations
            (B, 64, 64, 3) (converted with :func:`mazeinterp.core.model.obs_to_tensor`);
            moved to the model's device.
        hook_points: names to record; None = every hook point.
        stop_early: end the forward pass once the last requested hook point (in
            forward order) has been recorded; the outputs are then None.
        interventions: applied during the pass (see :func:`intervene`); the
            cache records activations after the edits.

    Returns:
        ``((logits (B, 15), value (B,)), cache)``, or ``(None, cache)`` when
        stopped early. Runs under ``torch.no_grad``; cached tensors are detached and
        contiguous (NCHW) whatever the numerics (:mod:`mazeinterp.core.numerics`).

    Raises:
        KeyError: an unknown hook point (the message lists close names).

    >>> (logits, value), cache = run_with_cache(model, x, ["embedder.relu3_out"])
    >>> _, cache = run_with_cache(model, x, ["embedder.block2.res1.resadd_out"], stop_early=True)
    """
    order = list(model.hook_points())
    names = order if hook_points is None else list(dict.fromkeys(hook_points))
    modules = {name: model.module_for_hook(name) for name in names}  # KeyError for unknown names
    last = max(names, key=order.index) if (stop_early and names) else None
    x = to_model_input(model, x)
    acts: dict[str, Tensor] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            acts[name] = output.detach().contiguous()  # NCHW whatever the numerics, as users expect
            if name == last:
                raise _StopForward

        return hook

    outputs = None
    with intervene(model, interventions):
        handles = [modules[name].register_forward_hook(recorder(name)) for name in names]
        try:
            with torch.no_grad():
                if stop_early and not names:
                    pass
                else:
                    outputs = model(x)
        except _StopForward:
            outputs = None
        finally:
            for handle in handles:
                handle.remove()
    if stop_early:
        outputs = None
    return outputs, ActivationCache({name: acts[name] for name in names})


# --------------------------------------------------------------------------- resuming a forward pass

_BLOCK_STEPS = ("conv", "maxpool", "res1", "res2")


def _main_chain(model: ImpalaPolicy) -> list[tuple[str, nn.Module]]:
    steps: list[tuple[str, nn.Module]] = []
    emb = model.embedder
    for b in (1, 2, 3):
        block = getattr(emb, f"block{b}")
        steps += [(f"embedder.block{b}.{s}", getattr(block, s)) for s in _BLOCK_STEPS]
    steps += [("embedder.relu3", emb.relu3), ("embedder.flatten", emb.flatten), ("embedder.fc", emb.fc),
              ("embedder.relufc", emb.relufc)]
    return steps


def _resume_index(hook: str) -> int | None:
    """Index in the main chain of the step whose output is ``hook`` (aliases included)."""
    if not hook.endswith(HOOK_SUFFIX):
        return None
    path = hook[: -len(HOOK_SUFFIX)]
    aliases = {}
    for b in (1, 2, 3):
        p = f"embedder.block{b}"
        aliases[f"{p}.res1.resadd"] = f"{p}.res1"
        aliases[f"{p}.res2.resadd"] = f"{p}.res2"
        aliases[p] = f"{p}.res2"
    aliases["embedder"] = "embedder.relufc"
    path = aliases.get(path, path)
    names = [f"embedder.block{b}.{s}" for b in (1, 2, 3) for s in _BLOCK_STEPS]
    names += ["embedder.relu3", "embedder.flatten", "embedder.fc", "embedder.relufc"]
    return names.index(path) if path in names else None


def can_forward_from(hook: str) -> bool:
    """Whether :func:`forward_from` can resume a forward pass from hook point ``hook``.

    >>> can_forward_from("embedder.relu3_out"), can_forward_from("embedder.block2.res1.conv1_out")
    (True, False)
    """
    return _resume_index(hook) is not None


def forward_from(model: ImpalaPolicy, hook: str, act: Tensor) -> tuple[Tensor, Tensor]:
    """Finish a forward pass from activation ``act`` at hook point ``hook``: → (logits (B, 15), value (B,)).

    Works for hook points on the main path of the network -- each block's
    ``conv_out``, ``maxpool_out``, ``res1_out`` / ``res1.resadd_out``,
    ``res2_out`` / ``res2.resadd_out`` / ``blockN_out``, and ``embedder.relu3_out``,
    ``flatten_out``, ``fc_out``, ``relufc_out``, ``embedder_out`` -- where the
    rest of the network depends on that activation alone. Hooks registered on
    later modules (e.g. by an enclosing :func:`intervene`) still fire; the
    container hook points (``blockN_out``, ``res*_out``, ``embedder_out``) are
    not re-run. Much cheaper than a full forward pass when editing late layers.

    Raises:
        ValueError: ``hook`` is inside a residual branch (no resume point).

    >>> _, cache = run_with_cache(model, x, ["embedder.relu3_out"], stop_early=True)
    >>> logits, value = forward_from(model, "embedder.relu3_out", cache["embedder.relu3_out"])
    """
    index = _resume_index(hook)
    if index is None:
        model.module_for_hook(hook)
        raise ValueError(f"cannot resume a forward pass from {hook!r}: it lies inside a residual branch; "
                         "use a full forward pass with an intervention instead")
    check_reference_weights(model.embedder.block1.conv.weight)
    h = as_network_input(act.to(_device_of(model)))
    for _, module in _main_chain(model)[index + 1 :]:
        h = module(h)
    return model.fc_policy(h), model.fc_value(h).squeeze(-1)


def modules_after(model: ImpalaPolicy, hook: str) -> list[tuple[str, nn.Module]]:
    """``(module path, module)`` of the main-path steps :func:`forward_from` runs after ``hook``, in order.

    Empty where the pass cannot resume from ``hook`` (:func:`can_forward_from`).
    """
    index = _resume_index(hook)
    return [] if index is None else _main_chain(model)[index + 1 :]


# --------------------------------------------------------------------------- states → activations

@functools.lru_cache(maxsize=None)
def _shared_renderer(batch_size: int = 64) -> StateRenderer:
    """A process-wide :class:`StateRenderer` (its env is built on first use and closed when the process exits)."""
    from mazeinterp.maze.env import StateRenderer

    renderer = StateRenderer(batch_size=batch_size)
    atexit.register(renderer.close)
    return renderer


def render_states(states: Sequence[MazeState], renderer: StateRenderer | None = None) -> np.ndarray:
    """Observations (N, 64, 64, 3) uint8 of ``states``, in order.

    Uses ``renderer`` if given, else a shared process-wide renderer of 64 envs
    (built on first use, reused afterwards, its env closed when the process exits).
    """
    states = list(states)
    if not states:
        return np.zeros((0, 64, 64, 3), dtype=np.uint8)
    return (renderer or _shared_renderer())(states)


@overload
def run_batched_with_cache(model: ImpalaPolicy, inputs: Sequence[MazeState] | np.ndarray | Tensor,
                           hook_points: Sequence[str] | None = (), *, stop_early: Literal[False] = False,
                           interventions: Sequence[Intervention] = (), renderer: StateRenderer | None = None,
                           batch_size: int = FORWARD_BATCH_SIZE, progress: bool | None = None,
                           ) -> tuple[tuple[Tensor, Tensor], ActivationCache]: ...
@overload
def run_batched_with_cache(model: ImpalaPolicy, inputs: Sequence[MazeState] | np.ndarray | Tensor,
                           hook_points: Sequence[str] | None = (), *, stop_early: bool,
                           interventions: Sequence[Intervention] = (), renderer: StateRenderer | None = None,
                           batch_size: int = FORWARD_BATCH_SIZE, progress: bool | None = None,
                           ) -> tuple[tuple[Tensor, Tensor] | None, ActivationCache]: ...
def run_batched_with_cache(
    model: ImpalaPolicy,
    inputs: Sequence[MazeState] | np.ndarray | Tensor,
    hook_points: Sequence[str] | None = (),
    *,
    stop_early: bool = False,
    interventions: Sequence[Intervention] = (),
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
) -> tuple[tuple[Tensor, Tensor] | None, ActivationCache]:
    """:func:`run_with_cache` over many inputs, ``batch_size`` at a time; results on CPU.

    The one batched forward pass of the package: every function that needs
    activations or outputs of many mazes calls this (or :func:`activations`).

    Args:
        model: the policy.
        inputs: maze states (rendered one batch at a time, see :func:`render_states`),
            or observations: uint8 (N, 64, 64, 3) or float (N, 3, 64, 64).
        hook_points: names to record; ``()`` records nothing (just the outputs); None records all.
        stop_early, interventions: as in :func:`run_with_cache`.
        renderer: the renderer of states (default: a shared one).
        batch_size: inputs per forward pass (does not change the numbers).
        progress: a bar counting batches (see :func:`mazeinterp.runtime.progress.progress_bar`).

    Returns:
        ``((logits (N, 15), value (N,)), cache)`` with cache tensors (N, ...); the outputs
        are None when stopped early.

    >>> (logits, _), cache = run_batched_with_cache(model, states, ["embedder.relu3_out"], batch_size=4)
    >>> logits.shape, cache["embedder.relu3_out"].shape
    (torch.Size([8, 15]), torch.Size([8, 32, 8, 8]))
    """
    from mazeinterp.runtime.limits import check_forward_batch
    from mazeinterp.runtime.progress import progress_bar

    check_forward_batch(batch_size, model.hook_points(), "run_batched_with_cache")
    interventions = validate_interventions(model, interventions)  # once, not at every batch
    observations = isinstance(inputs, (np.ndarray, Tensor))
    if not observations:
        inputs = list(inputs)
    names = list(model.hook_points()) if hook_points is None else list(hook_points)
    chunks: dict[str, list[Tensor]] = {name: [] for name in names}
    logits, values = [], []
    starts = range(0, len(inputs), batch_size)
    for start in progress_bar(starts, total=len(starts), desc="forward", enabled=progress):
        batch = inputs[start : start + batch_size]
        x = batch if isinstance(batch, (np.ndarray, Tensor)) else render_states(batch, renderer)
        outputs, cache = run_with_cache(model, x, names, stop_early=stop_early, interventions=interventions)
        for name in names:
            chunks[name].append(cache[name].cpu())
        if outputs is not None:
            logits.append(outputs[0].cpu())
            values.append(outputs[1].cpu())
    cache = ActivationCache({name: torch.cat(parts) if parts else torch.zeros(0) for name, parts in chunks.items()})
    if logits:
        outputs = (torch.cat(logits), torch.cat(values))
    else:  # stopped early, or no inputs: then the outputs are empty, not missing
        outputs = None if stop_early else (torch.zeros(0, model.num_actions), torch.zeros(0))
    return outputs, cache


def activations(
    model: ImpalaPolicy,
    hook: str,
    inputs: Sequence[MazeState] | np.ndarray | Tensor,
    *,
    interventions: Sequence[Intervention] = (),
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
) -> Tensor:
    """Activations (N, ...) at hook point ``hook`` of N maze states or observations, on CPU.

    :func:`run_batched_with_cache` for one hook point, the forward pass stopped
    there; ``inputs`` and the options as there.

    >>> activations(model, "embedder.relu3_out", states).shape
    torch.Size([8, 32, 8, 8])
    """
    _, cache = run_batched_with_cache(model, inputs, [hook], stop_early=True, interventions=interventions,
                                      renderer=renderer, batch_size=batch_size, progress=progress)
    return cache[hook]


run_states_with_cache = run_batched_with_cache
"""The same function under its earlier name, from when it took maze states only."""
