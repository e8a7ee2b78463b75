"""Behavioural statistics: binomial intervals, paired differences, maze-feature regressions.

Everything here is plain numpy (and scikit-learn for the regression, imported
only when a regression is fitted); nothing knows about torch or procgen.

Intervals
---------
* :func:`wilson_interval` -- the Wilson score interval of a proportion ``k / n``.
* :func:`paired_difference` -- the difference ``p_treatment - p_baseline`` of two
  proportions measured on the *same* mazes, with Newcombe's (1998) hybrid
  score interval for paired data ("method 10", the square-and-add of the two
  Wilson intervals with a continuity-corrected correlation term, as in
  Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables*,
  ch. 8), or a Wald interval on the per-maze differences.

>>> lo, hi = wilson_interval(8, 20)
>>> round(lo, 4), round(hi, 4)
(0.2188, 0.6134)

Regression
----------
:func:`fit_cheese_regression` fits an L2-regularised logistic regression on
standardised maze features (:data:`DEFAULT_FEATURES`, the distances of
:class:`mazeinterp.maze.grid.MazeFeatures`) predicting whether the agent
reached the cheese, and reports held-out accuracy against the majority-class
baseline and the coefficient of every standardised feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from mazeinterp.maze.grid import MazeFeatures
    from mazeinterp.maze.outcomes import Trap

__all__ = [
    "DEFAULT_FEATURES",
    "CheeseRegression",
    "EpisodeRecord",
    "PairedDifference",
    "bootstrap_interval",
    "feature_table",
    "fit_cheese_regression",
    "paired_difference",
    "wilson_interval",
    "z_value",
]

DEFAULT_FEATURES: tuple[str, ...] = (
    "cheese_top_right_euclidean",
    "cheese_top_right_path",
    "cheese_top_right_region_euclidean",
    "cheese_top_right_region_path",
    "cheese_decision_square_euclidean",
    "cheese_decision_square_path",
    "decision_square_top_right_euclidean",
    "decision_square_top_right_path",
)
"""The distance features of :class:`~mazeinterp.maze.grid.MazeFeatures` used by default.

The decision-square features are NaN for mazes without a decision square, so a
regression on them uses only mazes that have one.
"""


def z_value(confidence: float = 0.95) -> float:
    """Two-sided normal quantile for ``confidence`` (1.959964 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for the proportion ``successes / n``.

    ``(0.0, 1.0)`` when ``n == 0`` (no information). With ``z`` the normal
    quantile and ``p = k / n``::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

    Raises:
        ValueError: negative counts or ``successes > n``.
    """
    successes, n = int(successes), int(n)
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # exact at the ends (rounding would otherwise leave 1e-17 offsets)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(values: Sequence[float] | np.ndarray, statistic: str = "mean", confidence: float = 0.95,
                       n_resamples: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high): a statistic of ``values`` with a percentile-bootstrap interval.

    For per-maze numbers (probabilities, paired differences of them) where no
    closed form applies, e.g. the median P(cheese-ward move) over mazes. NaNs
    (mazes without the quantity) are dropped first.

    Args:
        values: (N,) numbers.
        statistic: ``"mean"`` or ``"median"``.
        confidence: coverage of the interval.
        n_resamples: bootstrap resamples (``scipy.stats.bootstrap``).
        seed: seeds the resampling.

    Raises:
        ValueError: unknown statistic, or fewer than two non-NaN values.
    """
    from scipy.stats import bootstrap

    functions: dict[str, Callable[..., Any]] = {"mean": np.mean, "median": np.median}
    if statistic not in functions:
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) < 2:
        raise ValueError(f"bootstrap_interval needs at least two values that are not NaN, got {len(x)}")
    function = functions[statistic]
    estimate = float(function(x))
    if np.ptp(x) == 0:
        return estimate, estimate, estimate
    result = bootstrap((x,), function, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                       random_state=np.random.default_rng(seed), vectorized=True, axis=-1)
    return estimate, float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class PairedDifference:
    """Difference ``p_treatment - p_baseline`` of a proportion measured on the same units.

    The counts form the paired 2×2 table: ``both`` (success in both
    conditions), ``treatment_only``, ``baseline_only`` and ``neither``.
    """

    estimate: float
    """``p_treatment - p_baseline`` = (treatment_only - baseline_only) / n."""
    low: float
    """Lower end of the interval."""
    high: float
    """Upper end of the interval."""
    n: int
    """Number of paired units (mazes)."""
    both: int
    """Units with a success in both conditions."""
    treatment_only: int
    """Units with a success under the treatment only."""
    baseline_only: int
    """Units with a success under the baseline only."""
    neither: int
    """Units with a success in neither condition."""
    p_baseline: float
    """Proportion under the baseline."""
    p_treatment: float
    """Proportion under the treatment."""
    confidence: float = 0.95
    """Confidence level of the interval."""
    method: str = "newcombe"
    """``"newcombe"`` (hybrid score, method 10) or ``"wald"``."""

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON)."""
        return {
            "estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n,
            "both": self.both, "treatment_only": self.treatment_only,
            "baseline_only": self.baseline_only, "neither": self.neither,
            "p_baseline": self.p_baseline, "p_treatment": self.p_treatment,
            "confidence": self.confidence, "method": self.method,
        }

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return (f"{self.estimate:+.3f} ({pct}% CI {self.low:+.3f} to {self.high:+.3f}; "
                f"{self.method}, n={self.n}, discordant {self.treatment_only}/{self.baseline_only})")


def _as_bool(values: Iterable[Any], what: str) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.dtype != bool:
        if array.size and not np.isin(array, (0, 1)).all():
            raise ValueError(f"{what} must hold booleans or 0/1 values")
        array = array.astype(bool)
    return array


def paired_difference(
    baseline: Sequence[bool] | np.ndarray,
    treatment: Sequence[bool] | np.ndarray,
    confidence: float = 0.95,
    method: str = "newcombe",
) -> PairedDifference:
    """Paired difference of two proportions measured on the same units, with an interval.

    ``baseline[i]`` and ``treatment[i]`` are the successes (e.g. "reached the
    cheese") of unit (maze) ``i`` under the two conditions.

    Methods:
        ``"newcombe"`` (default): Newcombe's hybrid score interval for paired
        proportions (1998, method 10). With Wilson intervals ``(l1, u1)`` for
        ``p1 = p_treatment`` and ``(l2, u2)`` for ``p2 = p_baseline``, table
        counts ``a`` both, ``b`` treatment only, ``c`` baseline only, ``d``
        neither, ``A = ad - bc`` and
        ``φ = (A - n/2)/√((a+b)(c+d)(a+c)(b+d))`` if ``A > n/2``, ``0`` if
        ``0 ≤ A ≤ n/2``, ``A/√(…)`` if ``A < 0`` (and 0 when a margin is 0)::

            low  = θ - √((p1-l1)² + (u2-p2)² - 2φ(p1-l1)(u2-p2))
            high = θ + √((p2-l2)² + (u1-p1)² - 2φ(p2-l2)(u1-p1))

        ``"wald"``: mean ± z·sd/√n of the per-unit differences
        ``treatment[i] - baseline[i]`` (sd with denominator n - 1; zero width
        when all differences agree). Simple, but too narrow for small n or
        proportions near 0 or 1.

    Raises:
        ValueError: different lengths, no units, non-binary values, unknown method.
    """
    base = _as_bool(baseline, "baseline")
    treat = _as_bool(treatment, "treatment")
    if base.shape != treat.shape:
        raise ValueError(f"baseline and treatment must pair up, got {base.size} and {treat.size} units")
    n = int(base.size)
    if n == 0:
        raise ValueError("paired_difference needs at least one unit")
    a = int(np.sum(base & treat))
    b = int(np.sum(treat & ~base))
    c = int(np.sum(base & ~treat))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    theta = p1 - p2
    z = z_value(confidence)
    if method == "newcombe":
        l1, u1 = wilson_interval(a + b, n, confidence)
        l2, u2 = wilson_interval(a + c, n, confidence)
        margins = (a + b) * (c + d) * (a + c) * (b + d)
        cross = a * d - b * c
        # a zero margin forces A = 0 (two of a, b, c, d are 0 and the other pair's product is 0): phi = 0 below
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross >= 0:
            phi = 0.0
        else:
            phi = cross / math.sqrt(margins)
        low = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
        high = theta + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    elif method == "wald":
        diffs = treat.astype(float) - base.astype(float)
        sd = float(np.std(diffs, ddof=1)) if n > 1 else 0.0
        half = z * sd / math.sqrt(n)
        low, high = theta - half, theta + half
    else:
        raise ValueError(f"unknown method {method!r}; use 'newcombe' or 'wald'")
    return PairedDifference(
        estimate=theta, low=max(-1.0, low), high=min(1.0, high), n=n, both=a, treatment_only=b,
        baseline_only=c, neither=d, p_baseline=p2, p_treatment=p1, confidence=confidence, method=method,
    )


# --------------------------------------------------------------------------------------
# per-maze feature table and the cheese regression


class EpisodeRecord(Protocol):
    """What the feature table and the regression read from an episode.

    A :class:`mazeinterp.rollout.Episode` is one; statistics need no more than
    these attributes, so this module does not depend on the rollout code.
    """

    @property
    def index(self) -> int: ...
    @property
    def level_seed(self) -> int: ...
    @property
    def maze_size(self) -> int: ...
    @property
    def outcome(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def region_size(self) -> int: ...
    @property
    def region_first(self) -> bool: ...
    @property
    def region_step(self) -> int | None: ...
    @property
    def trapped(self) -> bool: ...
    @property
    def trap(self) -> Trap | None: ...
    @property
    def features(self) -> MazeFeatures | None: ...


def feature_table(episodes: Iterable[EpisodeRecord]) -> list[dict[str, Any]]:
    """One row per episode: index, level seed, maze size, outcome, ``reached_cheese``, the top-right region
    and trap columns (see :class:`~mazeinterp.rollout.Episode`) and every maze feature.

    Cells become ``"row col"`` strings elsewhere (CSV); here they stay tuples.
    Episodes without a cheese (no features) get only the first columns.
    """
    rows = []
    for ep in episodes:
        row: dict[str, Any] = {
            "index": ep.index, "level_seed": ep.level_seed, "maze_size": ep.maze_size,
            "outcome": ep.outcome, "reached_cheese": ep.outcome == "cheese", "steps": ep.steps,
            "region_size": ep.region_size, "region_first": ep.region_first, "region_step": ep.region_step,
            "trapped": ep.trapped, "trap_cells": None if ep.trap is None else ep.trap.label(),
        }
        if ep.features is not None:
            row.update({k: v for k, v in ep.features.as_dict().items() if k not in ("n",)})
        rows.append(row)
    return rows


FEW_HELD_OUT = 30
"""Below this many held-out mazes a regression's accuracy comes with a warning (its interval is too wide)."""


@dataclass(frozen=True)
class CheeseRegression:
    """Result of :func:`fit_cheese_regression`."""

    features: tuple[str, ...]
    """Feature names, in the order of :attr:`coefficients`."""
    coefficients: dict[str, float]
    """Logistic-regression coefficient of each *standardised* feature (log-odds per SD)."""
    intercept: float
    """Intercept (log-odds of reaching the cheese at the mean features)."""
    accuracy: float
    """Accuracy on the held-out mazes."""
    baseline_accuracy: float
    """Held-out accuracy of always predicting the training set's majority class."""
    n_train: int
    """Mazes used to fit."""
    n_test: int
    """Held-out mazes."""
    n_dropped: int
    """Episodes left out because a feature was missing (NaN; e.g. no decision square)."""
    cheese_rate: float
    """Fraction of the used mazes where the agent reached the cheese."""
    C: float
    """Inverse L2 regularisation strength."""
    seed: int
    """Seed of the train/test split."""
    feature_means: dict[str, float] = field(default_factory=dict)
    """Training means used to standardise each feature."""
    feature_stds: dict[str, float] = field(default_factory=dict)
    """Training standard deviations used to standardise each feature."""

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON)."""
        return {
            "features": list(self.features), "coefficients": dict(self.coefficients),
            "intercept": self.intercept, "accuracy": self.accuracy,
            "baseline_accuracy": self.baseline_accuracy, "n_train": self.n_train,
            "n_test": self.n_test, "n_dropped": self.n_dropped, "cheese_rate": self.cheese_rate,
            "C": self.C, "seed": self.seed, "feature_means": dict(self.feature_means),
            "feature_stds": dict(self.feature_stds), "warning": self.few_held_out_warning,
        }

    @property
    def few_held_out_warning(self) -> str | None:
        """A warning when the held-out accuracy rests on fewer than :data:`FEW_HELD_OUT` mazes, else None."""
        if self.n_test >= FEW_HELD_OUT:
            return None
        low, high = wilson_interval(round(self.accuracy * self.n_test), self.n_test)
        return (f"held-out accuracy rests on only {self.n_test} mazes (95% interval [{low:.2f}, {high:.2f}]); "
                f"fit on more mazes for a usable estimate (at least {FEW_HELD_OUT} held out)")

    def coefficient_rows(self) -> list[dict[str, Any]]:
        """One row per feature, largest |coefficient| first."""
        order = sorted(self.features, key=lambda f: -abs(self.coefficients[f]))
        return [{"feature": f, "coefficient": self.coefficients[f], "mean": self.feature_means.get(f),
                 "std": self.feature_stds.get(f)} for f in order]

    def __str__(self) -> str:
        lines = [
            f"logistic regression (L2, C={self.C:g}) predicting 'reached cheese' from standardised features",
            f"  mazes: {self.n_train} train, {self.n_test} held out, {self.n_dropped} dropped (missing "
            f"features); cheese rate {self.cheese_rate:.3f}",
            f"  held-out accuracy {self.accuracy:.3f} vs majority baseline {self.baseline_accuracy:.3f}",
            *([f"  warning: {self.few_held_out_warning}"] if self.few_held_out_warning else []),
            f"  {'feature':<38} {'coef/SD':>8}",
        ]
        for row in self.coefficient_rows():
            lines.append(f"  {row['feature']:<38} {row['coefficient']:>+8.3f}")
        lines.append(f"  {'(intercept)':<38} {self.intercept:>+8.3f}")
        return "\n".join(lines)


def _design(
    episodes: Iterable[EpisodeRecord], features: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    X, y, dropped = [], [], 0
    known: set[str] | None = None
    for ep in episodes:
        if ep.features is None:
            dropped += 1
            continue
        values = ep.features.as_dict()
        if known is None:
            known = set(values)
            unknown = [f for f in features if f not in known]
            if unknown:
                raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(known)}")
        row = []
        for f in features:
            value = values[f]
            if not isinstance(value, (int, float, np.number)):  # a cell, or None: nothing to fit a slope to
                raise ValueError(f"feature {f!r} is a cell ({value!r}), not a number; regress on numeric features")
            row.append(float(value))
        if not all(math.isfinite(v) for v in row):
            dropped += 1
            continue
        X.append(row)
        y.append(ep.outcome == "cheese")
    return np.asarray(X, dtype=float), np.asarray(y, dtype=bool), dropped


def fit_cheese_regression(
    episodes: Iterable[EpisodeRecord],
    features: Sequence[str] = DEFAULT_FEATURES,
    *,
    test_fraction: float = 0.25,
    C: float = 1.0,
    seed: int = 0,
) -> CheeseRegression:
    """Predict "the agent reached the cheese" from maze features with L2 logistic regression.

    Features are standardised with the training mean and SD (a
    ``StandardScaler`` → ``LogisticRegression`` pipeline); the split into
    training and held-out mazes is seeded by ``seed`` and stratified by the
    outcome when both classes have at least two mazes and so do both sides of the split. Episodes with a missing
    feature (e.g. the decision-square distances of mazes without a decision
    square) are dropped and counted.

    Args:
        episodes: rollout episodes (:class:`mazeinterp.rollout.Episode`).
        features: names of :class:`~mazeinterp.maze.grid.MazeFeatures` fields.
        test_fraction: fraction of mazes held out.
        C: inverse regularisation strength of scikit-learn's ``LogisticRegression``.
        seed: seed of the split.

    Raises:
        ValueError: unknown feature, too few mazes, or only one outcome class
            among the training mazes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = tuple(features)
    if not features:
        raise ValueError("need at least one feature")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    X, y, dropped = _design(episodes, features)
    n = len(y)
    n_test = int(math.ceil(test_fraction * n))
    if n < 4 or n - n_test < 2:  # test_fraction > 0 holds out at least one of the n >= 4
        raise ValueError(f"need at least 4 mazes with all features to fit and hold out, got {n}")
    counts = np.bincount(y.astype(int), minlength=2)
    # scikit-learn stratifies only when each side of the split can hold both classes (the training side has
    # at least two mazes, checked above)
    stratify = y if counts.min() >= 2 and n_test >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=n_test, random_state=seed, stratify=stratify
    )
    if len(np.unique(y_train)) < 2:
        outcome = "reached" if y_train[0] else "missed"
        raise ValueError(
            f"every training maze {outcome} the cheese; a regression needs both outcomes "
            f"(cheese rate {y.mean():.3f} over {n} mazes)"
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(X_train, y_train)
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    majority = bool(y_train.mean() >= 0.5)
    baseline = float(np.mean(y_test == majority))
    scaler, logistic = model[0], model[-1]
    return CheeseRegression(
        features=features,
        coefficients={f: float(c) for f, c in zip(features, logistic.coef_[0])},
        intercept=float(logistic.intercept_[0]),
        accuracy=accuracy,
        baseline_accuracy=baseline,
        n_train=len(y_train),
        n_test=len(y_test),
        n_dropped=dropped,
        cheese_rate=float(y.mean()),
        C=float(C),
        seed=int(seed),
        feature_means={f: float(m) for f, m in zip(features, scaler.mean_)},
        feature_stds={f: float(s) for f, s in zip(features, scaler.scale_)},
    )

