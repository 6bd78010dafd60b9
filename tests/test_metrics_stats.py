"""A/B statistics against scipy as the oracle, plus hand-worked Holm adjustments."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.errors import InputError
from harness.metrics.stats.tests import (
    bootstrap_mean_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    wilcoxon_test,
)

# ----------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(7)
    values = rng.beta(2, 5, size=400)
    ours = bootstrap_mean_ci(values.tolist(), confidence=0.9, n_resamples=20_000, seed=1)
    theirs = sps.bootstrap((values,), np.mean, confidence_level=0.9, n_resamples=20_000, method="percentile",
                           random_state=np.random.default_rng(2)).confidence_interval
    se = values.std(ddof=1) / math.sqrt(values.size)
    # Two independent Monte Carlo estimates of the same quantiles: equal to within a small fraction of a SE.
    assert ours.low == pytest.approx(theirs.low, abs=0.1 * se)
    assert ours.high == pytest.approx(theirs.high, abs=0.1 * se)
    assert ours.estimate == pytest.approx(values.mean())
    assert ours.low < ours.estimate < ours.high
    assert (ours.n, ours.n_unmeasured, ours.confidence) == (400, 0, 0.9)


def test_bootstrap_is_seeded_and_frozen() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7]
    first = bootstrap_mean_ci(values, seed=3)
    assert first == bootstrap_mean_ci(values, seed=3)
    assert first != bootstrap_mean_ci(values, seed=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.low = 0.0  # type: ignore[misc]


def test_unmeasured_values_are_excluded_and_counted_not_zeroed() -> None:
    result = bootstrap_mean_ci([1.0, None, 1.0, float("nan"), 1.0], n_resamples=200)
    assert result.estimate == 1.0  # zeros would have pulled this to 0.6
    assert (result.low, result.high) == (1.0, 1.0)
    assert (result.n, result.n_unmeasured) == (3, 2)


def test_nothing_measured_gives_no_estimate() -> None:
    result = bootstrap_mean_ci([None, None])
    assert (result.estimate, result.low, result.high, result.n, result.n_unmeasured) == (None, None, None, 0, 2)


def test_paired_bootstrap_is_the_bootstrap_of_differences() -> None:
    rng = np.random.default_rng(11)
    baseline = rng.random(300)
    candidate = baseline + rng.normal(0.05, 0.1, size=300)
    ours = paired_bootstrap_ci(baseline.tolist(), candidate.tolist(), n_resamples=20_000, seed=5)
    diffs = candidate - baseline
    theirs = sps.bootstrap((diffs,), np.mean, n_resamples=20_000, method="percentile",
                           random_state=np.random.default_rng(6)).confidence_interval
    se = diffs.std(ddof=1) / math.sqrt(diffs.size)
    assert ours.estimate == pytest.approx(diffs.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.1 * se)
    assert ours.high == pytest.approx(theirs.high, abs=0.1 * se)


def test_paired_inputs_drop_a_pair_when_either_side_is_unmeasured() -> None:
    result = paired_bootstrap_ci([0.0, None, 0.5, 1.0], [1.0, 1.0, None, 1.0], n_resamples=100)
    assert (result.n, result.n_unmeasured) == (2, 2)
    assert result.estimate == pytest.approx(0.5)


def test_paired_length_mismatch_and_bad_values_are_input_errors() -> None:
    with pytest.raises(InputError, match="differ in length"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match=r"values\[1\]"):
        bootstrap_mean_ci([1.0, "high"])
    with pytest.raises(InputError, match="confidence"):
        bootstrap_mean_ci([1.0], confidence=95)


# ----------------------------------------------------------------------------------------------- sign flip


def scipy_sign_flip(baseline: np.ndarray, candidate: np.ndarray, n_resamples: int, seed: int = 0) -> float:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y - x, axis=axis)

    return sps.permutation_test((baseline, candidate), statistic, permutation_type="samples", vectorized=True,
                                n_resamples=n_resamples, alternative="two-sided",
                                random_state=np.random.default_rng(seed)).pvalue


@pytest.mark.parametrize("seed", range(4))
def test_exact_sign_flip_equals_scipy_exact_permutation_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 10
    baseline = rng.random(n)
    candidate = baseline + rng.normal(0.1 * seed, 0.2, size=n)
    ours = sign_flip_test(baseline.tolist(), candidate.tolist(), n_resamples=10_000)
    assert ours.method == "sign-flip exact"
    assert ours.statistic == pytest.approx(np.mean(candidate - baseline))
    assert ours.p_value == pytest.approx(scipy_sign_flip(baseline, candidate, 10_000), abs=1e-12)


def test_exact_sign_flip_counts_ties_with_the_observed_statistic() -> None:
    # Binary outcomes: many sign vectors reproduce |T| exactly; they must count as "as extreme".
    baseline = [1, 0, 1, 1, 0, 0, 1, 0]
    candidate = [1, 1, 1, 0, 1, 1, 1, 1]
    ours = sign_flip_test(baseline, candidate)
    theirs = scipy_sign_flip(np.array(baseline, float), np.array(candidate, float), 10_000)
    assert ours.p_value == pytest.approx(theirs, abs=1e-12)
    # By hand: d has four +1, one -1 and three 0; T = 3/8. |sum of signed +-1 over 5| >= 3 in 12 of 32 vectors.
    assert ours.p_value == pytest.approx(12 / 32)


def test_random_sign_flip_agrees_with_scipy_within_monte_carlo_error() -> None:
    rng = np.random.default_rng(21)
    baseline = rng.random(60)
    candidate = baseline + rng.normal(0.03, 0.15, size=60)
    ours = sign_flip_test(baseline.tolist(), candidate.tolist(), n_resamples=40_000, seed=1)
    theirs = scipy_sign_flip(baseline, candidate, 40_000, seed=2)
    assert ours.method == "sign-flip"
    assert 0.01 < ours.p_value < 0.99
    assert ours.p_value == pytest.approx(theirs, abs=0.015)


def test_sign_flip_degenerate_cases() -> None:
    same = sign_flip_test([0.5, 0.7, 0.1], [0.5, 0.7, 0.1])
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    empty = sign_flip_test([None], [1.0])
    assert (empty.p_value, empty.n, empty.n_unmeasured) == (None, 0, 1)
    # p = (count + 1) / (B + 1) is never 0, even for an overwhelming difference.
    big = sign_flip_test([0.0] * 40, [1.0] * 40, n_resamples=999)
    assert big.p_value == pytest.approx(1 / 1000)


# ------------------------------------------------------------------------------------------------ wilcoxon


def test_wilcoxon_wraps_scipy_and_drops_unmeasured_pairs() -> None:
    rng = np.random.default_rng(3)
    baseline = rng.random(30)
    candidate = baseline + rng.normal(0.05, 0.1, size=30)
    expected = sps.wilcoxon(candidate - baseline)
    with_gaps_a = baseline.tolist() + [None, 0.3]
    with_gaps_b = candidate.tolist() + [0.2, float("nan")]
    ours = wilcoxon_test(with_gaps_a, with_gaps_b)
    assert ours.p_value == pytest.approx(expected.pvalue)
    assert ours.statistic == pytest.approx(expected.statistic)
    assert (ours.n, ours.n_unmeasured) == (30, 2)


def test_wilcoxon_with_no_differences() -> None:
    result = wilcoxon_test([1.0, 0.0], [1.0, 0.0])
    assert (result.statistic, result.p_value) == (0.0, 1.0)
    assert wilcoxon_test([], []).p_value is None


# ------------------------------------------------------------------------------------------------- mcnemar


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_exact_equals_binomial_test_on_discordant_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    baseline = (rng.random(n) < 0.6).tolist()
    candidate = (rng.random(n) < 0.6 + 0.05 * seed).tolist()
    result = mcnemar_exact(baseline, candidate)
    b = sum(x and not y for x, y in zip(baseline, candidate, strict=True))
    c = sum(y and not x for x, y in zip(baseline, candidate, strict=True))
    assert (result.baseline_only, result.candidate_only) == (b, c)
    assert result.both + result.neither + b + c == n
    expected = sps.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert result.p_value == pytest.approx(expected, abs=1e-12)


def test_mcnemar_hand_worked_and_unmeasured() -> None:
    # b = 0, c = 5: p = 2 * 0.5**5 = 1/16.
    result = mcnemar_exact([0, 0, 0, 0, 0, 1, None], [1, 1, 1, 1, 1, 1, 1])
    assert result.p_value == pytest.approx(1 / 16)
    assert (result.baseline_only, result.candidate_only, result.both, result.neither) == (0, 5, 1, 0)
    assert (result.n, result.n_unmeasured) == (6, 1)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert mcnemar_exact([None], [True]).p_value is None
    with pytest.raises(InputError, match="pass/fail"):
        mcnemar_exact([0.5], [1])


# ---------------------------------------------------------------------------------------------------- holm


def test_holm_hand_worked() -> None:
    # Sorted: 0.01, 0.02, 0.03, 0.04 with m = 4 -> 0.04, 0.06, 0.06 (step-down max of 0.06), 0.06 (max of 0.04).
    result = holm([0.03, 0.01, 0.04, 0.02], alpha=0.05)
    assert result.adjusted == pytest.approx((0.06, 0.04, 0.06, 0.06))
    assert result.reject == (False, True, False, False)
    assert result.m == 4


def test_holm_caps_at_one_and_skips_unmeasured() -> None:
    result = holm([0.5, None, 0.001, 0.4])
    # m = 3: 0.001 * 3 = 0.003; 0.4 * 2 = 0.8; 0.5 * 1 = 0.5 -> raised to 0.8 by the running max.
    assert result.adjusted[0] == pytest.approx(0.8)
    assert result.adjusted[1] is None
    assert result.adjusted[2] == pytest.approx(0.003)
    assert result.adjusted[3] == pytest.approx(0.8)
    assert result.reject == (False, None, True, False)
    assert holm([0.3, 0.02]).adjusted == pytest.approx((0.3, 0.04))  # 0.02 * 2, 0.3 * 1
    assert holm([0.9, 0.8]).adjusted == pytest.approx((1.0, 1.0))  # 0.8 * 2 capped at 1; 0.9 raised to it


def test_holm_rejects_bad_p_values() -> None:
    with pytest.raises(InputError, match=r"p_values\[1\]"):
        holm([0.1, 1.5])
