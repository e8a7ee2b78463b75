"""Channel discovery and attribution, by measurement instead of by eye.

Each method returns a :class:`ChannelTable`: one row per channel, ranked by a
documented ``score`` (highest first), with method-specific columns.

* :func:`cheese_tracking_channels` -- how well each channel's activation map
  locates the cheese across mazes (spatial peak on the cheese; correlation of
  the map with the cheese's position).
* :func:`directional_channels` -- how strongly each channel pushes the policy
  toward each move (change of the move log-probabilities when the channel is
  zero-ablated; and the gradient × activation estimate of the same).
* :func:`behaviour_attribution` -- change of P(cheese-ward move at the decision
  square) when the channel is ablated.
* :func:`cheese_probe` -- a linear probe (shared over positions, a 1×1
  convolution) that finds the cheese's pixel from the layer's activations, with
  held-out accuracy; channels ranked by probe weight.

>>> table = cheese_tracking_channels(model, states)     # the shipped agent on level seeds 0…7
>>> [row["channel"] for row in table.top(3).to_rows()]
[23, 31, 6]
>>> print(table.top(2))                                  # doctest: +NORMALIZE_WHITESPACE
cheese_tracking_channels @ embedder.block2.res1.resadd_out (n_mazes=8, peak_chance=0.05127)
score = (peak_hit + corr)/2; ...
rank  channel   score  peak_hit    corr  cheese_effect
   1       23  0.6118     0.875  0.3486          3.663
   2       31  0.5475      0.75  0.3449          2.849
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from mazeinterp.analysis.channel_table import ChannelTable
from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK, DIRECTIONAL_HOOK, FORWARD_BATCH_SIZE
from mazeinterp.core.finite import check_logits
from mazeinterp.core.hook_points import check_layer, hook_shape
from mazeinterp.core.hooks import (
    activations,
    can_forward_from,
    forward_from,
    intervene,
    render_states,
    run_batched_with_cache,
    to_model_input,
)
from mazeinterp.core.interventions import MeanAblate, ZeroAblate, validate_interventions
from mazeinterp.maze.grid import decision_square
from mazeinterp.maze.pixels import cell_to_pixel_region
from mazeinterp.core.model import MOVES, ImpalaPolicy, Move, move_probs
from mazeinterp.runtime.progress import progress_bar
from mazeinterp.analysis.vfield import cheese_ward_move

if TYPE_CHECKING:
    from mazeinterp.maze.env import StateRenderer
    from mazeinterp.maze.state import MazeState

__all__ = [
    "ChannelTable",
    "PROBE_MIN_MAZES",
    "behaviour_attribution",
    "cheese_probe",
    "cheese_tracking_channels",
    "directional_channels",
]

PROBE_MIN_MAZES = 4
"""Fewest mazes :func:`cheese_probe` takes: at least one held out and some to train on."""

_REAL_MOVES = (Move.LEFT, Move.DOWN, Move.UP, Move.RIGHT)


# --------------------------------------------------------------------------- shared helpers


def _cheese_states(states: Sequence[MazeState], what: str) -> list[MazeState]:
    states = list(states)
    if not states:
        raise ValueError(f"{what} needs at least one maze state")
    for i, s in enumerate(states):
        if s.cheese is None:
            raise ValueError(f"{what}: state {i} has no cheese")
    return states


def _activations_and_logits(model: ImpalaPolicy, obs: np.ndarray, hook: str, batch_size: int) -> tuple[Tensor, Tensor]:
    """Activations (N, ...) at ``hook`` and the clean logits (N, 15), on CPU."""
    (logits, _), cache = run_batched_with_cache(model, obs, [hook], batch_size=batch_size, progress=False)
    return cache[hook], check_logits(logits, model)


def _cheese_masks(states: Sequence[MazeState], res: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per maze (N, res, res) bool: the cheese cell's pixels, and those dilated by ``radius`` (Chebyshev)."""
    region = np.zeros((len(states), res, res), dtype=bool)
    near = np.zeros_like(region)
    for i, s in enumerate(states):
        assert s.cheese is not None  # the states passed _cheese_states
        rows, cols = cell_to_pixel_region(s.cheese, s.maze_size, res)
        region[i, rows, cols] = True
        r0, c0 = max(rows.start - radius, 0), max(cols.start - radius, 0)
        near[i, r0 : rows.stop + radius, c0 : cols.stop + radius] = True
    return region, near


def _log_move_probs(logits: Tensor) -> Tensor:
    return torch.log(move_probs(logits.double()).clamp_min(1e-30))


def _ablated_move_probs(model: ImpalaPolicy, hook: str, acts: Tensor, obs: np.ndarray, channels: Sequence[int],
                        fill: Tensor | None, batch_size: int, progress: bool | None, desc: str) -> Tensor:
    """Move probabilities (len(channels), N, 5) with each channel ablated in turn.

    ``fill`` None zero-ablates; else (C, H, W) values to ablate to. Resumes the
    forward pass from ``hook`` when possible (:func:`forward_from`), else runs
    full forward passes with the ablation as an intervention.
    """
    n = acts.shape[0]
    out = torch.empty(len(channels), n, len(Move), dtype=torch.float64)
    resumable = can_forward_from(hook)
    with torch.inference_mode():
        for j, c in enumerate(progress_bar(channels, total=len(channels), desc=desc, enabled=progress)):
            iv = ZeroAblate(hook, channels=(c,)) if fill is None else MeanAblate(hook, fill, channels=(c,))
            edits = validate_interventions(model, [iv])  # once per channel, not at every batch
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                if resumable:
                    act = acts[start:stop].clone()
                    act[:, c] = 0.0 if fill is None else fill[c]
                    logits, _ = forward_from(model, hook, act)
                else:
                    with intervene(model, edits):
                        logits, _ = model(to_model_input(model, obs[start:stop]))
                out[j, start:stop] = move_probs(check_logits(logits, model, [iv]).double()).cpu()
    return out


def _grad_times_act(model: ImpalaPolicy, hook: str, acts: Tensor, obs: np.ndarray, batch_size: int) -> Tensor:
    """Per channel and move, mean over states of Σ_pixels ∂log P(move)/∂act · act: (C, 5).

    The first-order (attribution-patching) estimate of log P(clean) − log P(channel zeroed).
    """
    total = torch.zeros(acts.shape[1], len(Move), dtype=torch.float64)
    n = acts.shape[0]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        with torch.enable_grad():
            if can_forward_from(hook):
                leaf = acts[start:stop].clone().requires_grad_(True)
                logits, _ = forward_from(model, hook, leaf)
                handle = None
            else:
                holder: dict[str, Tensor] = {}

                def make_leaf(_m: Any, _i: Any, output: Tensor) -> Tensor:
                    holder["leaf"] = output.detach().requires_grad_(True)
                    return holder["leaf"]

                handle = model.module_for_hook(hook).register_forward_hook(make_leaf)
                try:
                    logits, _ = model(to_model_input(model, obs[start:stop]))
                finally:
                    handle.remove()
                leaf = holder["leaf"]
            logp = _log_move_probs(check_logits(logits, model))
            for m in Move:
                (grad,) = torch.autograd.grad(logp[:, m].sum(), leaf, retain_graph=m != Move.NOOP)
                contrib = (grad * leaf.detach()).double()
                total[:, m] += contrib.flatten(2).sum(-1).sum(0) if contrib.ndim == 4 else contrib.sum(0)
    return total / n


# --------------------------------------------------------------------------- cheese tracking


def cheese_tracking_channels(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str = DEFAULT_STEERING_HOOK,
    *,
    radius: int = 1,
    sign: Literal["positive", "negative", "both"] = "positive",
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
) -> ChannelTable:
    """Rank the channels of ``hook`` by how well their activation maps locate the cheese.

    For each maze (rendered as given, typically mouse at the start) and each
    channel's map at ``hook``:

    * ``peak_hit``: the map's spatial argmax lies within ``radius`` activation
      pixels (Chebyshev) of the cheese cell's pixels
      (:func:`~mazeinterp.maze.pixels.cell_to_pixel_region`); averaged over
      mazes. Chance level (fraction of such pixels) is ``summary['peak_chance']``.
    * ``corr``: Pearson correlation over pixels between the map and the
      indicator of the cheese cell's pixels (0 for a constant map); averaged.
    * ``score = (peak_hit + corr) / 2``, in [-0.5, 1]; 1 means the map peaks
      on the cheese and is flat elsewhere in every maze.
    * ``cheese_effect`` (not in the score): mean over mazes of the change at the
      cheese pixels when the cheese is removed, ``act(cheese) − act(no cheese)``,
      in units of the channel's standard deviation.

    ``sign="negative"`` scores ``-map`` (channels marking the cheese with a
    dip); ``"both"`` takes the better of the two per channel (column ``sign``).

    >>> table = cheese_tracking_channels(model, states[:8])
    >>> table.top(5).channel
    array([23, 31,  6,  8, 24])
    """
    states = _cheese_states(states, "cheese_tracking_channels")
    c_, res, _ = hook_shape(model.hook_points(), hook, need_map=True)
    pairs = [s for st in states for s in (st, st.without_cheese())]
    obs = render_states(pairs, renderer)
    acts_all = activations(model, hook, obs, batch_size=batch_size, progress=False)
    acts, acts0 = acts_all[0::2].double(), acts_all[1::2].double()
    n = len(states)
    region, near = _cheese_masks(states, res, radius)
    region_t = torch.from_numpy(region).view(n, 1, -1)
    near_t = torch.from_numpy(near).view(n, -1)

    def scores(maps: Tensor) -> tuple[np.ndarray, np.ndarray]:
        flat = maps.flatten(2)  # (N, C, HW)
        peak = flat.argmax(-1)  # (N, C)
        hit = torch.gather(near_t, 1, peak).double().mean(0)
        centred = flat - flat.mean(-1, keepdim=True)
        ind = region_t.double() - region_t.double().mean(-1, keepdim=True)
        denom = torch.sqrt((centred**2).sum(-1) * (ind**2).sum(-1))
        corr = torch.where(denom > 1e-12, (centred * ind).sum(-1) / denom.clamp_min(1e-12), torch.zeros(()))
        return hit.numpy(), corr.mean(0).numpy()

    hit_pos, corr_pos = scores(acts)
    hit_neg, corr_neg = scores(-acts)
    score_pos, score_neg = (hit_pos + corr_pos) / 2, (hit_neg + corr_neg) / 2
    if sign == "positive":
        use_neg = np.zeros(c_, dtype=bool)
    elif sign == "negative":
        use_neg = np.ones(c_, dtype=bool)
    elif sign == "both":
        use_neg = score_neg > score_pos
    else:
        raise ValueError(f"sign must be 'positive', 'negative' or 'both', got {sign!r}")
    diff = (acts - acts0).flatten(2)
    at_cheese = (diff * region_t).sum(-1) / region_t.sum(-1)  # (N, C)
    std = acts.transpose(0, 1).flatten(1).std(1).clamp_min(1e-12)
    effect = (at_cheese.mean(0) / std).numpy()
    data = {
        "channel": np.arange(c_),
        "score": np.where(use_neg, score_neg, score_pos),
        "peak_hit": np.where(use_neg, hit_neg, hit_pos),
        "corr": np.where(use_neg, corr_neg, corr_pos),
        "cheese_effect": effect,
    }
    if sign == "both":
        data["sign"] = np.where(use_neg, -1, 1)
    return ChannelTable(
        "cheese_tracking_channels", hook, data,
        description=(f"score = (peak_hit + corr)/2; peak_hit: fraction of mazes whose map argmax is within {radius} "
                     "px of the cheese; corr: mean correlation of the map with the cheese-pixel indicator; "
                     "cheese_effect: (act with − without cheese) at the cheese pixel / channel std"),
        summary={"n_mazes": n, "peak_chance": float(near.reshape(n, -1).mean())},
    )


# --------------------------------------------------------------------------- directional channels


def directional_channels(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str = DIRECTIONAL_HOOK,
    *,
    move: Move | int | str | None = None,
    gradient: bool = True,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
) -> ChannelTable:
    """Rank channels of ``hook`` by how strongly they push the policy toward a move.

    For each channel c and move m, ``push_m`` is the mean over ``states`` of
    ``log P(m) − log P(m | channel c zero-ablated)`` (move probabilities as in
    :func:`mazeinterp.core.model.move_probs`): positive when the channel pushes
    toward m. ``score`` is the largest push over the four real moves (column
    ``top_move`` names it), or, with ``move`` given, that move's push.

    With ``gradient=True`` (cheap: 5 backward passes per batch) the columns
    ``grad_m`` hold the first-order estimate of the same quantity, the mean of
    Σ_pixels ∂log P(m)/∂act · act (attribution patching); it equals ``push_m``
    when the rest of the network is linear in the channel.

    Ablations resume the forward pass at ``hook`` where possible
    (:func:`mazeinterp.core.hooks.forward_from`), so the default late layer is cheap.

    >>> table = directional_channels(model, states[:8])
    >>> up = directional_channels(model, states[:8], move="up", gradient=False)
    >>> up.top(3).channel, up.top(1).to_rows()[0]["top_move"]
    (array([14, 24, 22]), 'up')
    """
    states = list(states)
    if not states:
        raise ValueError("directional_channels needs at least one maze state")
    shape = hook_shape(model.hook_points(), hook)
    if move is not None:
        move = Move[move.upper()] if isinstance(move, str) else Move(move)
    obs = render_states(states, renderer)
    acts, logits = _activations_and_logits(model, obs, hook, batch_size)
    clean = _log_move_probs(logits)  # (N, 5)
    channels = list(range(shape[0]))
    ablated = torch.log(_ablated_move_probs(model, hook, acts, obs, channels, None, batch_size, progress,
                                            "ablating").clamp_min(1e-30))
    push = (clean.unsqueeze(0) - ablated).mean(1).numpy()  # (C, 5)
    real = [int(m) for m in _REAL_MOVES]
    best = np.array(real)[push[:, real].argmax(1)]
    score = push[:, int(move)] if move is not None else push[:, real].max(1)
    data: dict[str, np.ndarray] = {
        "channel": np.arange(shape[0]), "score": score,
        "top_move": np.array([MOVES[m] for m in best]),
    }
    for m in Move:
        data[f"push_{MOVES[m]}"] = push[:, m]
    if gradient:
        est = _grad_times_act(model, hook, acts, obs, batch_size).numpy()
        for m in _REAL_MOVES:
            data[f"grad_{MOVES[m]}"] = est[:, m]
    what = f"push_{MOVES[move]}" if move is not None else "max over left/down/up/right of push_m"
    return ChannelTable(
        "directional_channels", hook, data,
        description=(f"score = {what}; push_m = mean over states of log P(m) − log P(m | channel zeroed); "
                     "grad_m = first-order (gradient × activation) estimate of push_m"),
        summary={"n_states": len(states)},
    )


# --------------------------------------------------------------------------- behaviour attribution


def behaviour_attribution(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str = DEFAULT_STEERING_HOOK,
    channels: Sequence[int] | None = None,
    *,
    ablation: Literal["zero", "mean"] = "zero",
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
    definition: str = "mazeinterp",
) -> ChannelTable:
    """Per channel: change of P(cheese-ward move at the decision square) when it is ablated.

    Mazes without a decision square are left out (``summary['n_mazes']`` counts
    those used). For each remaining maze the mouse is put on the decision
    square and the probability of the move toward the cheese
    (:func:`mazeinterp.analysis.vfield.cheese_ward_move`) is read with and without the
    ablation of one channel. ``delta`` is the mean of ``P(ablated) − P(clean)``
    (negative: the channel supports going to the cheese), ``delta_se`` its
    standard error, ``score = |delta|``.

    ``ablation="zero"`` sets the channel to 0; ``"mean"`` to its mean map over
    these decision-square observations. ``definition``: which decision square
    (:func:`mazeinterp.maze.grid.decision_square`).

    >>> behaviour_attribution(model, states[:8], channels=range(4)).top(2).channel
    array([3, 0])
    """
    states = list(states)
    wanted = None if channels is None else [int(c) for c in channels]
    shape, _ = check_layer(model, hook, wanted)
    channels = list(range(shape[0])) if wanted is None else wanted  # as given: a repeated channel is a repeated row
    moved, moves = [], []
    for s in states:
        move = cheese_ward_move(s, definition)
        if move is not None:  # so the state has a cheese and a decision square
            assert s.cheese is not None
            ds = decision_square(s.open_cells, s.cheese, definition)
            assert ds is not None
            moved.append(s.with_mouse(ds))
            moves.append(int(move))
    if not moved:
        raise ValueError("behaviour_attribution: none of the mazes has a decision square")
    obs = render_states(moved, renderer)
    acts, logits = _activations_and_logits(model, obs, hook, batch_size)
    idx = torch.arange(len(moved))
    target = torch.tensor(moves)
    clean = move_probs(logits.double())[idx, target]  # (n,)
    if ablation == "zero":
        fill = None
    elif ablation == "mean":
        fill = acts.mean(0)
    else:
        raise ValueError(f"ablation must be 'zero' or 'mean', got {ablation!r}")
    probs = _ablated_move_probs(model, hook, acts, obs, channels, fill, batch_size, progress, "ablating")
    deltas = probs[:, idx, target] - clean.unsqueeze(0)  # (len(channels), n)
    n = len(moved)
    delta = deltas.mean(1).numpy()
    se = (deltas.std(1) / np.sqrt(n)).numpy() if n > 1 else np.full(len(channels), np.nan)
    return ChannelTable(
        "behaviour_attribution", hook,
        {"channel": np.array(channels), "score": np.abs(delta), "delta": delta, "delta_se": se,
         "frac_decreased": (deltas < 0).double().mean(1).numpy()},
        description=(f"score = |delta|; delta = mean over mazes of P(cheese-ward move at decision square | "
                     f"channel {ablation}-ablated) − P(clean)"),
        summary={"n_mazes": n, "n_skipped": len(states) - n, "p_clean": float(clean.mean())},
    )


# --------------------------------------------------------------------------- probe


def cheese_probe(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str = DEFAULT_STEERING_HOOK,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    C: float = 1.0,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
) -> ChannelTable:
    """A linear probe locating the cheese from ``hook``'s activations; held-out accuracy; channels ranked.

    The probe is one logistic regression shared by all positions (a 1×1
    convolution): at every activation pixel, the C channel values
    (standardised with the training mazes' mean and std) predict whether the
    pixel covers the cheese cell (classes balanced). Its prediction of the
    cheese's location in a maze is the pixel of largest probe logit. Mazes are
    split at random (``seed``) into training and held-out sets
    (``test_fraction``).

    ``summary``: ``accuracy`` (held-out mazes whose predicted pixel covers the
    cheese cell), ``accuracy_within1`` (within one pixel), ``train_accuracy``,
    ``chance`` (mean fraction of pixels covering the cheese), ``n_train``, ``n_test``.

    Table, one probe per channel alone: its prediction is the argmax of the
    channel's map times a sign fitted on the training mazes (column ``sign``);
    ``single_accuracy`` / ``single_within1`` are its held-out accuracies (exact /
    within one pixel) and ``score`` their mean. ``weight`` is the channel's
    standardised weight in the layer-wide probe (weights of correlated channels
    share the signal, so rank by ``score``, not by weight).

    >>> probe = cheese_probe(model, states[:8])
    >>> probe.summary["accuracy"], probe.top(3).channel
    (0.5, array([ 3, 11, 23]))
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    states = _cheese_states(states, "cheese_probe")
    n = len(states)
    if n < PROBE_MIN_MAZES:
        raise ValueError(f"cheese_probe needs at least {PROBE_MIN_MAZES} mazes, got {n}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    c_, res, _ = hook_shape(model.hook_points(), hook, need_map=True)
    obs = render_states(states, renderer)
    acts = activations(model, hook, obs, batch_size=batch_size, progress=False).double().numpy()  # (N, C, H, W)
    region, near = _cheese_masks(states, res, 1)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    test, train = perm[:n_test], perm[n_test:]

    feats = acts.transpose(0, 2, 3, 1).reshape(n, res * res, c_)  # (N, HW, C)
    mean = feats[train].reshape(-1, c_).mean(0)
    std = feats[train].reshape(-1, c_).std(0)
    std[std < 1e-12] = 1.0
    z = (feats - mean) / std
    labels = region.reshape(n, -1)
    probe = LogisticRegression(C=C, class_weight="balanced", max_iter=1000, random_state=seed)
    with threadpool_limits(1):
        probe.fit(z[train].reshape(-1, c_), labels[train].reshape(-1))
    logit = z @ probe.coef_[0] + probe.intercept_[0]  # (N, HW)
    pred = logit.argmax(1)
    hit = labels[np.arange(n), pred]
    hit1 = near.reshape(n, -1)[np.arange(n), pred]

    # single-channel probes: a·act + b has its argmax at the argmax of ±act; the sign is fitted on training mazes
    flat = acts.reshape(n, c_, -1)
    rows = np.arange(n)[:, None]
    near_flat = near.reshape(n, -1)
    peaks = {+1: flat.argmax(-1), -1: (-flat).argmax(-1)}  # (N, C) each
    hits = {k: labels[rows, v] for k, v in peaks.items()}
    hits1 = {k: near_flat[rows, v] for k, v in peaks.items()}
    train_score = {k: hits[k][train].mean(0) + hits1[k][train].mean(0) for k in peaks}
    use_neg = train_score[-1] > train_score[+1]
    single = np.where(use_neg, hits[-1][test].mean(0), hits[+1][test].mean(0))
    single1 = np.where(use_neg, hits1[-1][test].mean(0), hits1[+1][test].mean(0))
    weight = probe.coef_[0]
    return ChannelTable(
        "cheese_probe", hook,
        {"channel": np.arange(c_), "score": (single + single1) / 2, "single_accuracy": single,
         "single_within1": single1, "sign": np.where(use_neg, -1, 1), "weight": weight},
        description=("score = held-out accuracy of a probe on this channel alone, (exact + within 1 px) / 2 "
                     "(its prediction: argmax of sign·map); weight: the channel's standardised weight in "
                     "the layer-wide 1×1 logistic probe (summary: its held-out accuracy)"),
        summary={"accuracy": float(hit[test].mean()), "accuracy_within1": float(hit1[test].mean()),
                 "train_accuracy": float(hit[train].mean()), "chance": float(labels.mean()),
                 "n_train": len(train), "n_test": len(test)},
    )
