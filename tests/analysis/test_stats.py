"""stats: Wilson intervals, paired differences and the cheese regression, against hand-computed numbers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mazeinterp.maze.grid import MazeFeatures
from mazeinterp.rollout import Episode
from mazeinterp.analysis.stats import (
    DEFAULT_FEATURES,
    feature_table,
    fit_cheese_regression,
    paired_difference,
    wilson_interval,
    z_value,
)

Z = 1.959963984540054


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(Z, abs=1e-12)
    assert z_value(0.99) == pytest.approx(2.5758293035489, abs=1e-9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        z_value(1.0)


def test_wilson_interval_matches_hand_computed_values() -> None:
    # 8 / 20: centre = (0.4 + z²/40) / (1 + z²/20), half = z/(1 + z²/20) · sqrt(0.4·0.6/20 + z²/1600)
    z2 = Z * Z
    centre = (0.4 + z2 / 40) / (1 + z2 / 20)
    half = Z / (1 + z2 / 20) * math.sqrt(0.4 * 0.6 / 20 + z2 / 1600)
    low, high = wilson_interval(8, 20)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.2188, 0.6134)  # the textbook values
    # 0 / 10 and 10 / 10: the ends are exact, the other limit is z²/(n + z²)
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)), abs=1e-12)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0), abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # a wider level gives a wider interval
    lo99, hi99 = wilson_interval(8, 20, confidence=0.99)
    assert lo99 < low and hi99 > high


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5), (1, -1)])
def test_wilson_interval_rejects_bad_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(k, n)


def _paired(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Units with (baseline, treatment) = (1,1)·a, (0,1)·b, (1,0)·c, (0,0)·d."""
    base = np.array([1] * a + [0] * b + [1] * c + [0] * d, dtype=bool)
    treat = np.array([1] * a + [1] * b + [0] * c + [0] * d, dtype=bool)
    return base, treat


def test_paired_difference_newcombe_matches_the_published_example() -> None:
    # Fagerland, Lydersen & Laake, ch. 8 (Cavo et al. 2012): table [[59, 6], [16, 80]],
    # Newcombe square-and-add: estimate -0.0621 (95% CI -0.1186 to -0.0046)
    base, treat = _paired(59, 6, 16, 80)
    d = paired_difference(base, treat)
    assert (d.both, d.treatment_only, d.baseline_only, d.neither, d.n) == (59, 6, 16, 80, 161)
    assert d.estimate == pytest.approx(-10 / 161)
    assert round(d.estimate, 4) == -0.0621
    assert round(d.low, 4) == -0.1186
    assert round(d.high, 4) == -0.0046
    assert d.p_treatment == pytest.approx(65 / 161) and d.p_baseline == pytest.approx(75 / 161)


def test_paired_difference_newcombe_by_hand_with_negative_correlation() -> None:
    # a=1, b=4, c=3, d=2, n=10: A = ad - bc = -10 < 0, so phi = A / sqrt((a+b)(c+d)(a+c)(b+d))
    base, treat = _paired(1, 4, 3, 2)
    p1, p2 = 0.5, 0.4
    l1, u1 = wilson_interval(5, 10)
    l2, u2 = wilson_interval(4, 10)
    phi = -10 / math.sqrt(5 * 5 * 4 * 6)
    low = 0.1 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    high = 0.1 + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1))
    d = paired_difference(base, treat)
    assert d.estimate == pytest.approx(0.1)
    assert (d.low, d.high) == pytest.approx((low, high), abs=1e-12)


def test_paired_difference_wald_by_hand() -> None:
    treat = [1, 1, 0, 0, 1]
    base = [0, 1, 0, 1, 0]
    # differences 1, 0, 0, -1, 1: mean 0.2, sample sd sqrt(2.8 / 4)
    half = Z * math.sqrt(0.7) / math.sqrt(5)
    d = paired_difference(base, treat, method="wald")
    assert d.estimate == pytest.approx(0.2)
    assert (d.low, d.high) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-12)
    assert d.method == "wald"


def test_paired_difference_edge_cases() -> None:
    same = np.array([True, False, True, True])
    d = paired_difference(same, same)
    assert d.estimate == 0.0 and d.low <= 0.0 <= d.high
    everything = np.ones(12, dtype=bool)
    d = paired_difference(everything, everything)  # a margin of zero: phi = 0
    assert d.estimate == 0.0 and d.low <= 0.0 <= d.high and -1 <= d.low and d.high <= 1
    d = paired_difference(np.zeros(30, bool), np.ones(30, bool))
    assert d.estimate == 1.0 and 0.8 < d.low < 1.0 and d.high == pytest.approx(1.0)
    assert "CI" in str(d)
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1, 0], [1])
    with pytest.raises(ValueError, match="at least one"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="unknown method"):
        paired_difference([1], [0], method="exact")
    with pytest.raises(ValueError, match="0/1"):
        paired_difference([2], [0])


# ----- regression ---------------------------------------------------------------------


def _episode(i: int, values: dict[str, float], cheese: bool) -> Episode:
    features = MazeFeatures(
        n=15, cheese=(5, 5), has_decision_square=True, decision_square=(7, 3),
        **{name: values.get(name, 1.0) for name in DEFAULT_FEATURES},
    )
    return Episode(index=i, level_seed=i, maze_size=15, cheese=(5, 5), has_decision_square=True,
                   decision_square=(7, 3), outcome="cheese" if cheese else "top_right", steps=10,
                   start=(14, 0), features=features)


def _synthetic(n: int = 200, seed: int = 0) -> list[Episode]:
    """The agent reaches the cheese iff the cheese is close to the top-right (plus a little noise)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        values = {name: float(rng.uniform(0, 10)) for name in DEFAULT_FEATURES}
        cheese = values["cheese_top_right_euclidean"] + rng.normal(0, 0.5) < 5
        episodes.append(_episode(i, values, cheese))
    return episodes


def test_cheese_regression_finds_the_planted_feature() -> None:
    episodes = _synthetic()
    reg = fit_cheese_regression(episodes, seed=1)
    assert reg.n_train + reg.n_test == 200 and reg.n_test == 50 and reg.n_dropped == 0
    assert reg.accuracy >= 0.85
    assert reg.accuracy > reg.baseline_accuracy + 0.2
    top = reg.coefficient_rows()[0]
    assert top["feature"] == "cheese_top_right_euclidean" and top["coefficient"] < -1
    others = [abs(v) for k, v in reg.coefficients.items() if k != "cheese_top_right_euclidean"]
    assert max(others) < abs(top["coefficient"]) / 3
    # standardised: means and SDs are the training set's
    assert reg.feature_stds["cheese_top_right_path"] == pytest.approx(10 / math.sqrt(12), rel=0.2)
    again = fit_cheese_regression(episodes, seed=1)
    assert again.as_dict() == reg.as_dict(), "same seed, same split, same numbers"
    assert "held-out accuracy" in str(reg)


@pytest.mark.parametrize("reached, missed", [(30, 10), (10, 30)])
def test_cheese_regression_majority_baseline_by_hand(reached: int, missed: int) -> None:
    # features carry no signal; the stratified split holds out 15+5 (or 5+15) of the 40 mazes, and the
    # training majority (3/4 of the mazes) predicts 15 of the 20 held-out ones
    rng = np.random.default_rng(0)
    outcomes = [True] * reached + [False] * missed
    episodes = [_episode(i, {"cheese_top_right_euclidean": float(rng.uniform(0, 10))}, cheese)
                for i, cheese in enumerate(outcomes)]
    reg = fit_cheese_regression(episodes, ["cheese_top_right_euclidean"], test_fraction=0.5, seed=3)
    assert reg.n_test == 20 and list(reg.coefficients) == ["cheese_top_right_euclidean"]
    assert reg.baseline_accuracy == 15 / 20
    assert reg.cheese_rate == reached / 40


def test_cheese_regression_drops_missing_features_and_refuses_one_class() -> None:
    episodes = _synthetic(60)
    nan_values = {name: float("nan") for name in DEFAULT_FEATURES}
    episodes += [_episode(100 + i, nan_values, True) for i in range(5)]
    reg = fit_cheese_regression(episodes)
    assert reg.n_dropped == 5 and reg.n_train + reg.n_test == 60
    with pytest.raises(ValueError, match="both outcomes"):
        fit_cheese_regression([_episode(i, {}, True) for i in range(20)])
    with pytest.raises(ValueError, match="unknown feature"):
        fit_cheese_regression(episodes, ["nope"])
    with pytest.raises(ValueError, match=r"feature 'decision_square' is a cell \(\(7, 3\)\), not a number"):
        fit_cheese_regression(episodes, ["cheese_top_right_path", "decision_square"])
    with pytest.raises(ValueError, match="at least 4"):
        fit_cheese_regression(episodes[:2])


def test_feature_table_rows() -> None:
    rows = feature_table(_synthetic(3))
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert {"outcome", "reached_cheese", "cheese_top_right_path", "decision_square"} <= set(rows[0])
    assert (rows[0]["region_size"], rows[0]["region_first"], rows[0]["trapped"], rows[0]["trap_cells"]) == (
        5, False, False, None)


def test_bootstrap_interval_mean_matches_normal_theory():
    """For a large normal sample the bootstrap interval of the mean is close to mean ± 1.96·sd/√n."""
    from mazeinterp.analysis.stats import bootstrap_interval

    x = np.random.default_rng(0).normal(2.0, 1.0, size=2000)
    estimate, low, high = bootstrap_interval(x, "mean", seed=1)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(len(x))
    assert estimate == pytest.approx(x.mean())
    assert low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.15 * half)


def test_bootstrap_interval_median_drops_nans_and_is_reproducible():
    from mazeinterp.analysis.stats import bootstrap_interval

    x = np.array([0.1, 0.9, np.nan, 0.5, 0.4, 0.6, np.nan, 0.3, 0.7, 0.2, 0.8])
    estimate, low, high = bootstrap_interval(x, "median", seed=3)
    assert estimate == pytest.approx(0.5)  # the median of 0.1 … 0.9
    assert low <= estimate <= high and 0.1 <= low and high <= 0.9
    assert bootstrap_interval(x, "median", seed=3) == (estimate, low, high)
    assert bootstrap_interval([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)  # no spread: a point interval


def test_bootstrap_interval_rejects_bad_input():
    from mazeinterp.analysis.stats import bootstrap_interval

    with pytest.raises(ValueError, match="statistic"):
        bootstrap_interval([1.0, 2.0], "mode")
    with pytest.raises(ValueError, match="at least two"):
        bootstrap_interval([np.nan, 1.0])


def test_json_is_strict_and_missing_values_are_null(tmp_path) -> None:
    import json
    import math

    import numpy as np

    from mazeinterp.runtime.outputs import OutputDir
    from mazeinterp.rollout import OutcomeSummary

    empty = OutcomeSummary.of([])  # proportions of no episodes are NaN
    path = OutputDir(tmp_path).write_json("summary.json", {"summary": empty.as_dict(), "x": np.float32("inf"),
                                                           "ok": np.float64(0.25), "n": np.int64(3),
                                                           "nested": [(1.0, math.nan)]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["summary"]["proportions"] == {"cheese": None, "top_right": None, "neither": None}
    assert data["summary"]["mean_steps"] is None and data["x"] is None
    assert (data["ok"], data["n"], data["nested"]) == (0.25, 3, [[1.0, None]])
def test_few_held_out_mazes_bring_a_warning() -> None:
    small = fit_cheese_regression(_synthetic(40), test_fraction=0.25, seed=0)  # 10 held out
    assert small.n_test == 10
    assert "only 10 mazes" in small.few_held_out_warning and "warning: held-out accuracy" in str(small)
    assert small.as_dict()["warning"] == small.few_held_out_warning
    large = fit_cheese_regression(_synthetic(200), seed=0)  # 50 held out
    assert large.few_held_out_warning is None and "warning" not in str(large)


# ----- boundaries and branches that the tests above leave open ---------------------------


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's interval at 95%, written out from the textbook formula."""
    z2, p = Z * Z, k / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def test_paired_difference_newcombe_by_hand_with_weak_positive_correlation() -> None:
    # (a, b, c, d) = (2, 3, 1, 2): A = ad - bc = 1 lies in [0, n/2 = 4], so Newcombe's phi is 0
    d = paired_difference(*_paired(2, 3, 1, 2))
    assert (d.both, d.treatment_only, d.baseline_only, d.neither, d.n) == (2, 3, 1, 2, 8)
    p1, p2 = 5 / 8, 3 / 8
    (l1, u1), (l2, u2) = _wilson(5, 8), _wilson(3, 8)
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    assert (d.estimate, d.low, d.high) == pytest.approx((0.25, low, high), abs=1e-12)


def test_z_value_refuses_confidence_zero_and_one() -> None:
    for confidence in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=f"strictly between 0 and 1, got {confidence}"):
            z_value(confidence)
    assert z_value(1e-9) == pytest.approx(0.0, abs=1e-8)


def test_bootstrap_interval_of_zeros_and_ones_is_a_real_interval() -> None:
    from mazeinterp.analysis.stats import bootstrap_interval

    estimate, low, high = bootstrap_interval([0.0, 1.0] * 10, "mean", seed=0)  # range exactly 1
    assert estimate == 0.5 and 0.2 < low < 0.5 < high < 0.8
    assert bootstrap_interval([0.25, 0.25, 0.25]) == (0.25, 0.25, 0.25)  # no spread: no resampling


def test_cheese_regression_fits_four_mazes_and_refuses_three() -> None:
    values_outcomes = [(1.0, True), (2.0, True), (8.0, False), (9.0, False)]
    episodes = [_episode(i, {"cheese_top_right_euclidean": v}, c) for i, (v, c) in enumerate(values_outcomes)]
    reg = fit_cheese_regression(episodes, ["cheese_top_right_euclidean"])
    assert (reg.n_train, reg.n_test, reg.n_dropped) == (3, 1, 0)
    with pytest.raises(ValueError, match="need at least 4 mazes with all features to fit and hold out, got 3"):
        fit_cheese_regression(episodes[:3], ["cheese_top_right_euclidean"])


def test_the_warning_starts_below_30_held_out_mazes() -> None:
    at_30 = fit_cheese_regression(_synthetic(120), test_fraction=0.25, seed=0)
    assert at_30.n_test == 30 and at_30.few_held_out_warning is None
    at_29 = fit_cheese_regression(_synthetic(116), test_fraction=0.25, seed=0)
    assert at_29.n_test == 29 and "rests on only 29 mazes" in at_29.few_held_out_warning


def test_a_maze_is_dropped_only_when_a_requested_feature_is_missing() -> None:
    episodes = _synthetic(60)
    no_square = {name: (float("nan") if "decision_square" in name else 1.0) for name in DEFAULT_FEATURES}
    episodes += [_episode(100 + i, no_square, True) for i in range(5)]
    with_square = fit_cheese_regression(episodes)
    assert with_square.n_dropped == 5 and with_square.n_train + with_square.n_test == 60
    others = [name for name in DEFAULT_FEATURES if "decision_square" not in name]
    without = fit_cheese_regression(episodes, others)
    assert without.n_dropped == 0 and without.n_train + without.n_test == 65


def test_feature_table_says_which_episodes_reached_the_cheese() -> None:
    timed_out = dataclasses.replace(_episode(3, {}, False), outcome="neither")
    rows = feature_table([_episode(0, {}, True), _episode(1, {}, False), _episode(2, {}, True), timed_out])
    assert [(r["outcome"], r["reached_cheese"]) for r in rows] == [
        ("cheese", True), ("top_right", False), ("cheese", True), ("neither", False)]


def test_the_split_is_stratified_at_exactly_two_mazes_per_class_and_side() -> None:
    # 2 reached, 2 missed, half held out: stratified, each side holds one of each class, for every seed;
    # an unstratified split would, for some seeds, train on one class only (and refuse)
    values_outcomes = [(1.0, True), (2.0, True), (8.0, False), (9.0, False)]
    episodes = [_episode(i, {"cheese_top_right_euclidean": v}, c) for i, (v, c) in enumerate(values_outcomes)]
    for seed in range(10):
        reg = fit_cheese_regression(episodes, ["cheese_top_right_euclidean"], test_fraction=0.5, seed=seed)
        assert (reg.n_train, reg.n_test) == (2, 2)
        # training classes tie at 1:1, so the majority is "reached"; one of the two held out reached
        assert reg.baseline_accuracy == 0.5


def test_paired_difference_newcombe_by_hand_with_strong_positive_correlation() -> None:
    # (a, b, c, d) = (3, 1, 1, 2), n = 7: A = ad - bc = 5 > n/2, so phi = (A - n/2) / sqrt(4·3·4·3) = 0.125
    d = paired_difference(*_paired(3, 1, 1, 2))
    p = 4 / 7
    (l1, u1), (l2, u2) = _wilson(4, 7), _wilson(4, 7)
    phi = 0.125
    low = -math.sqrt((p - l1) ** 2 + (u2 - p) ** 2 - 2 * phi * (p - l1) * (u2 - p))
    high = math.sqrt((p - l2) ** 2 + (u1 - p) ** 2 - 2 * phi * (p - l2) * (u1 - p))
    assert (d.estimate, d.low, d.high) == pytest.approx((0.0, low, high), abs=1e-12)


def test_paired_difference_wald_of_one_unit_and_its_clipping() -> None:
    one = paired_difference([0], [1], method="wald")  # one unit: no spread to estimate, zero width
    assert (one.estimate, one.low, one.high) == (1.0, 1.0, 1.0)
    # differences +1 and -1: mean 0, sd sqrt(2), half-width z·sqrt(2)/sqrt(2) = 1.96, clipped to [-1, 1]
    split = paired_difference([0, 1], [1, 0], method="wald")
    assert (split.estimate, split.low, split.high) == (0.0, -1.0, 1.0)


def test_a_tie_among_the_training_mazes_makes_reached_the_majority() -> None:
    from sklearn.model_selection import train_test_split

    # 3 reached, 2 missed, one held out (too few to stratify): when the held-out maze reached the cheese,
    # the training mazes tie 2:2 and the baseline predicts "reached", right on the held-out maze
    outcomes = [True, False, True, False, True]
    episodes = [_episode(i, {"cheese_top_right_euclidean": float(i)}, c) for i, c in enumerate(outcomes)]
    for seed in range(6):
        (held_out,) = train_test_split(np.arange(5), test_size=1, random_state=seed)[1]
        reg = fit_cheese_regression(episodes, ["cheese_top_right_euclidean"], test_fraction=0.2, seed=seed)
        assert (reg.n_train, reg.n_test) == (4, 1)
        assert reg.baseline_accuracy == (1.0 if outcomes[held_out] else 0.0)


def test_a_split_that_leaves_one_training_maze_is_refused() -> None:
    episodes = [_episode(i, {}, i % 2 == 0) for i in range(8)]
    with pytest.raises(ValueError, match="need at least 4 mazes with all features to fit and hold out, got 8"):
        fit_cheese_regression(episodes, test_fraction=0.9)  # 8 held out, none to fit
    with pytest.raises(ValueError, match="need at least 4 mazes with all features to fit and hold out, got 4"):
        fit_cheese_regression(episodes[:4], test_fraction=0.75)  # 3 held out, 1 to fit
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1, got 1.0"):
        fit_cheese_regression(episodes, test_fraction=1.0)
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1, got 0.0"):
        fit_cheese_regression(episodes, test_fraction=0.0)
    with pytest.raises(ValueError, match="need at least one feature"):
        fit_cheese_regression(episodes, [])


def test_the_one_class_refusal_says_which_class() -> None:
    with pytest.raises(ValueError, match=r"every training maze reached the cheese; .* \(cheese rate 1.000 over 20"):
        fit_cheese_regression([_episode(i, {}, True) for i in range(20)])
    with pytest.raises(ValueError, match=r"every training maze missed the cheese; .* \(cheese rate 0.000 over 20"):
        fit_cheese_regression([_episode(i, {}, False) for i in range(20)])


def test_wilson_interval_at_one_success_and_the_exact_zero() -> None:
    assert wilson_interval(1, 10) == pytest.approx(_wilson(1, 10), abs=1e-12)
    assert wilson_interval(1, 10)[0] > 0.01
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_bootstrap_interval_defaults_and_two_values() -> None:
    from mazeinterp.analysis.stats import bootstrap_interval

    x = np.random.default_rng(5).normal(size=30)
    assert bootstrap_interval(x) == bootstrap_interval(x, "mean", 0.95, n_resamples=4000, seed=0)
    assert bootstrap_interval(x) != bootstrap_interval(x, seed=1)
    # two values: the resampled means are 1, 2 or 3 (a quarter of them 1 and a quarter 3)
    assert bootstrap_interval([1.0, 3.0]) == (2.0, 1.0, 3.0)


def test_paired_difference_newcombe_by_hand_just_below_half_n() -> None:
    # (a, b, c, d) = (2, 2, 2, 4), n = 10: A = ad - bc = 4 lies in [0, n/2 = 5], so phi = 0
    d = paired_difference(*_paired(2, 2, 2, 4))
    lo, hi = _wilson(4, 10)
    half = math.sqrt((0.4 - lo) ** 2 + (hi - 0.4) ** 2)
    assert (d.estimate, d.low, d.high) == pytest.approx((0.0, -half, half), abs=1e-12)


def test_paired_difference_reads_any_iterable_and_refuses_tables() -> None:
    d = paired_difference((v for v in [1, 1, 0, 0, 1, 0, 1, 0]), iter([1, 1, 1, 1, 1, 0, 0, 0]))
    assert str(d) == "+0.125 (95% CI -0.303 to +0.496; newcombe, n=8, discordant 2/1)"
    with pytest.raises(ValueError, match=r"baseline must be one-dimensional, got shape \(2, 2\)"):
        paired_difference(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.low = 0.0  # type: ignore[misc]


def test_regression_defaults_dropped_episodes_and_the_warning_interval() -> None:
    episodes = _synthetic(40) + [dataclasses.replace(_episode(99, {}, True), features=None)]
    reg = fit_cheese_regression(episodes)
    assert reg.seed == 0 and reg.as_dict() == fit_cheese_regression(episodes, seed=0).as_dict()
    assert reg.n_dropped == 1 and reg.n_test == 10
    low, high = wilson_interval(round(reg.accuracy * 10), 10)
    assert f"(95% interval [{low:.2f}, {high:.2f}])" in reg.few_held_out_warning
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg.accuracy = 1.0  # type: ignore[misc]
