"""Verdicts on two-cell claims: effect, bootstrap interval, sign-flip p-value, verdict rules and MDE."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from zoharness.verdicts import Claim, Verdict, judge

R = 2000  # resamples: enough for stable 95% intervals, fast enough for unit tests


def bernoulli(p, n_seeds, n, seed):
    """Synthetic 0/1 correctness; p may be one accuracy or one per seed."""
    p = np.broadcast_to(np.asarray(p, dtype=float).reshape(-1, 1), (n_seeds, 1))
    return (np.random.default_rng(seed).random((n_seeds, n)) < p).astype(float)


def claim(direction=">", margin=0.0):
    return Claim("mezo beats zero-shot", "mezo", "zero-shot", direction, margin)


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_clearly_better_cell_is_supported(n_seeds):
    a, b = bernoulli(0.9, n_seeds, 800, 1), bernoulli(0.5, n_seeds, 800, 2)
    v = judge(claim(), a, b, n_resamples=R)
    assert v.verdict == "supported"
    assert v.ci_low < 0.4 < v.ci_high
    assert v.ci_low < v.effect < v.ci_high
    assert v.effect == pytest.approx(a.mean() - b.mean())
    assert v.p_value < 0.01
    assert (v.n_seeds, v.n_examples, v.n_resamples) == (n_seeds, 800, R)


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_identical_cells_are_inconclusive_without_warnings(n_seeds):
    # d = 0 everywhere: zero variance. The interval is [0, 0]; it touches 0 without excluding it,
    # so neither "a > b" nor its opposite is shown.
    a = bernoulli(0.7, n_seeds, 300, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = judge(claim(), a, a.copy(), n_resamples=R)
    assert (v.effect, v.ci_low, v.ci_high, v.mde) == (0.0, 0.0, 0.0, 0.0)
    assert v.p_value == 1.0
    assert v.verdict == "inconclusive"


def test_reversed_pair_is_contradicted():
    a, b = bernoulli(0.9, 1, 800, 1), bernoulli(0.5, 1, 800, 2)
    v = judge(claim(), b, a, n_resamples=R)
    assert v.verdict == "contradicted"
    assert v.ci_high < 0
    assert v.p_value > 0.5


def test_less_than_mirrors_greater_than():
    a, b = bernoulli(0.9, 1, 800, 1), bernoulli(0.5, 1, 800, 2)
    assert judge(claim("<"), b, a, n_resamples=R).verdict == "supported"
    assert judge(claim("<"), a, b, n_resamples=R).verdict == "contradicted"


def test_margin_turns_a_small_win_into_a_contradicted_claim():
    # a beats b by about 0.05; "a beats b by at least 0.2" is contradicted by the same data.
    a = bernoulli(0.75, 1, 2000, 4)
    b = np.where(np.random.default_rng(5).random(a.shape) < 0.07, 0.0, a)
    assert judge(claim(">", 0.0), a, b, n_resamples=R).verdict == "supported"
    v = judge(claim(">", 0.2), a, b, n_resamples=R)
    assert v.verdict == "contradicted"
    assert v.p_value > 0.5


def near_copy(n, seed):
    """b equals a except that 2% of a's correct answers are wrong: a true difference of about 0.014."""
    a = bernoulli(0.7, 1, n, seed)
    b = np.where(np.random.default_rng(seed + 1).random(a.shape) < 0.02, 0.0, a)
    return a, b


def test_comparable_with_tiny_difference_and_large_n_is_supported():
    a, b = near_copy(4000, 6)
    v = judge(claim("≈", 0.05), a, b, n_resamples=R)
    assert v.verdict == "supported"
    assert -0.05 < v.ci_low < v.ci_high < 0.05
    assert v.p_value < 0.01


def test_comparable_with_margin_below_the_difference_is_not_supported():
    a, b = near_copy(4000, 6)
    v = judge(claim("≈", 0.005), a, b, n_resamples=R)
    assert v.effect > 0.005
    assert v.verdict == "contradicted"
    assert v.p_value > 0.5


@pytest.mark.parametrize("one_seed", ["a", "b"])
def test_single_seed_cell_is_broadcast_against_many(one_seed):
    many, single = bernoulli(0.8, 5, 200, 7), bernoulli(0.6, 1, 200, 8)
    a, b = (single, many) if one_seed == "a" else (many, single)
    v = judge(claim(), a, b, n_resamples=R)
    tiled = judge(
        claim(), np.repeat(a, 5 // len(a), axis=0), np.repeat(b, 5 // len(b), axis=0), n_resamples=R
    )
    assert v.n_seeds == 5
    assert v == tiled


def test_seed_count_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 50\).*\(3, 50\)"):
        judge(claim(), np.zeros((2, 50)), np.zeros((3, 50)), n_resamples=R)


def test_example_count_mismatch_raises():
    with pytest.raises(ValueError, match=r"n_examples"):
        judge(claim(), np.zeros((1, 50)), np.zeros((1, 49)), n_resamples=R)


@pytest.mark.parametrize("which", ["a", "b"])
def test_nan_raises(which):
    x, y = np.zeros((2, 20)), np.zeros((2, 20))
    (x if which == "a" else y)[1, 3] = np.nan
    with pytest.raises(ValueError, match=rf"^{which} .*NaN"):
        judge(claim(), x, y, n_resamples=R)


def test_one_dimensional_input_raises():
    with pytest.raises(ValueError, match=r"n_seeds, n_examples"):
        judge(claim(), np.zeros(20), np.zeros((1, 20)), n_resamples=R)


@pytest.mark.parametrize(
    ("direction", "margin", "field"),
    [("=", 0.0, "direction"), ("≈", 0.0, "margin"), (">", -0.01, "margin"), (">", float("nan"), "margin")],
)
def test_claim_validation_names_the_field(direction, margin, field):
    value = direction if field == "direction" else margin
    with pytest.raises(ValueError, match=rf"Claim\.{field} .*got {re.escape(repr(value))}$"):
        Claim("c", "x", "y", direction, margin)


def test_interval_covers_the_true_difference_in_most_replications():
    # True difference 0.7 - 0.6 = 0.1; a 95% interval should cover it in ~95% of replications.
    covered = 0
    for rep in range(30):
        a, b = bernoulli(0.7, 1, 200, 100 + 2 * rep), bernoulli(0.6, 1, 200, 101 + 2 * rep)
        v = judge(claim(), a, b, n_resamples=1000, seed=rep)
        covered += v.ci_low <= 0.1 <= v.ci_high
    assert covered >= 24


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_results_are_deterministic_for_a_fixed_seed(n_seeds):
    a, b = bernoulli(0.7, n_seeds, 300, 9), bernoulli(0.6, n_seeds, 300, 10)
    first = judge(claim(), a, b, n_resamples=R, seed=11)
    assert judge(claim(), a, b, n_resamples=R, seed=11) == first
    other = judge(claim(), a, b, n_resamples=R, seed=12)
    # Interval ends of 0/1 data are multiples of 1/n and may coincide; the bootstrap spread (mde) may not.
    assert other.mde != first.mde
    assert other.effect == first.effect


def test_mde_shrinks_like_one_over_sqrt_n():
    mde = {
        n: judge(claim(), bernoulli(0.7, 1, n, 13), bernoulli(0.6, 1, n, 14), n_resamples=R).mde
        for n in (200, 3200)
    }
    # 16x the examples: 4x smaller in theory; loose bounds for sampling noise in the two data sets.
    assert 2.5 < mde[200] / mde[3200] < 6


def test_nested_bootstrap_counts_seed_to_seed_spread():
    # Seeds disagree strongly (fine-tuning accuracy 0.55..0.95 by seed): the two-level interval must be
    # much wider than one that resamples examples of the seed-averaged cell only.
    a = bernoulli([0.55, 0.65, 0.75, 0.85, 0.95], 5, 400, 15)
    b = bernoulli(0.6, 1, 400, 16)
    nested = judge(claim(), a, b, n_resamples=R)
    pooled = judge(claim(), a.mean(axis=0, keepdims=True), b, n_resamples=R)
    assert nested.effect == pytest.approx(pooled.effect)
    assert nested.ci_high - nested.ci_low > 2 * (pooled.ci_high - pooled.ci_low)
    assert nested.mde > 2 * pooled.mde


def test_as_row_makes_a_table_row():
    a, b = bernoulli(0.9, 1, 100, 17), bernoulli(0.5, 1, 100, 18)
    v = judge(claim(), a, b, n_resamples=R)
    table = pd.DataFrame([v.as_row()])
    assert list(table.columns) == list(Verdict.__dataclass_fields__)
    assert table.loc[0, "claim"] == "mezo beats zero-shot" and table.loc[0, "verdict"] == v.verdict
    with pytest.raises(AttributeError):
        v.verdict = "supported"  # frozen
