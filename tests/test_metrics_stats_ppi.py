"""PPI++ mean estimation: hand-worked values, and a simulation with known truth for coverage and width."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.metrics.stats.ppi import ppi_mean

Z = float(sps.norm.ppf(0.975))


def test_fixed_lambda_matches_the_formula_by_hand() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.5, 0.0])
    f = np.array([0.9, 0.2, 0.7, 0.8, 0.5, 0.1])
    u = np.array([0.3, 0.6, 0.9, 0.4])
    result = ppi_mean(y, f, u, lam=0.5)
    # theta = mean(y) + 0.5 (mean(u) - mean(f)) = 0.58333 + 0.5 (0.55 - 0.53333) = 0.59167
    assert result.ppi.estimate == pytest.approx(0.5916667, abs=1e-6)
    variance = 0.25 * u.var() / 4 + (y - 0.5 * f).var() / 6
    assert result.ppi.se == pytest.approx(np.sqrt(variance))
    assert result.ppi.low == pytest.approx(0.5916667 - Z * np.sqrt(variance), abs=1e-6)
    assert result.lam == 0.5 and result.n_labelled == 6 and result.n_unlabelled == 4


def test_lambda_zero_is_the_grades_only_interval() -> None:
    rng = np.random.default_rng(1)
    y, f, u = rng.uniform(size=40), rng.uniform(size=40), rng.uniform(size=400)
    result = ppi_mean(y, f, u, lam=0.0)
    assert result.ppi.estimate == pytest.approx(y.mean())
    assert result.ppi.low == pytest.approx(result.classical.low)
    assert result.ppi.high == pytest.approx(result.classical.high)
    low, high = sps.norm.interval(0.95, loc=y.mean(), scale=y.std() / np.sqrt(40))
    assert result.classical.low == pytest.approx(low) and result.classical.high == pytest.approx(high)


def test_tuned_lambda_by_hand_and_clipping() -> None:
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    f = np.array([0.1, 0.9, 0.3, 0.7, 0.6])
    u = np.array([0.2, 0.8, 0.5, 0.5, 0.4])
    every = np.concatenate([f, u])
    expected = np.mean((y - y.mean()) * (f - every.mean())) / ((1 + 5 / 5) * every.var(ddof=1))
    assert ppi_mean(y, f, u).lam == pytest.approx(min(1.0, expected))
    assert ppi_mean(y, 1 - f, u).lam == 0.0  # anti-correlated predictions are clipped to no weight
    assert ppi_mean(y, np.full(5, 0.5), np.full(5, 0.5)).lam == 0.0  # a constant carries no information


def test_missing_labels_and_predictions_are_dropped_and_tiny_samples_say_so() -> None:
    result = ppi_mean([1.0, None, 0.0], [0.5, 0.5, None], [0.4, None])
    assert result.n_labelled == 1 and result.n_unlabelled == 1
    assert not result.ppi.has_interval and "too few graded cases" in (result.ppi.reason or "")
    assert ppi_mean([], [], [0.5]).ppi.reason == "no graded case"


def _simulate(informative: bool, reps: int, n: int, big_n: int, seed: int) -> tuple[float, float, float, float]:
    """Coverage and mean width of PPI++ and of grades only, over ``reps`` draws from a population with mean 0.6."""
    rng = np.random.default_rng(seed)
    truth = 0.6
    covered = covered_classical = 0
    widths, widths_classical = [], []
    for _ in range(reps):
        x = rng.normal(size=n + big_n)
        y = truth + 0.2 * x + rng.normal(0, 0.1, size=n + big_n)
        # The informative predictor is biased (-0.1) and mis-scaled; PPI must remove the bias, not trust it.
        f = 0.5 + 0.15 * x if informative else rng.uniform(size=n + big_n)
        result = ppi_mean(y[:n], f[:n], f[n:])
        assert result.ppi.low is not None and result.ppi.high is not None
        assert result.classical.low is not None and result.classical.high is not None
        covered += result.ppi.low <= truth <= result.ppi.high
        covered_classical += result.classical.low <= truth <= result.classical.high
        widths.append(result.ppi.high - result.ppi.low)
        widths_classical.append(result.classical.high - result.classical.low)
    return covered / reps, covered_classical / reps, float(np.mean(widths)), float(np.mean(widths_classical))


@pytest.mark.parametrize("informative", [True, False])
def test_simulation_coverage_and_width(informative: bool) -> None:
    reps = 2000  # binomial noise on the coverage: sd 0.005, so 0.93-0.97 is a band of about ±4 sd
    coverage, coverage_classical, width, width_classical = _simulate(informative, reps, n=100, big_n=1000, seed=2)
    kind = "informative" if informative else "uninformative"
    print(
        f"\nPPI++ simulation ({kind} predictor, {reps} reps, n=100 graded, N=1000 ungraded, truth 0.6): "
        f"coverage {coverage:.3f} (grades only {coverage_classical:.3f}); mean width {width:.4f} vs grades only "
        f"{width_classical:.4f} (ratio {width / width_classical:.3f})"
    )
    assert 0.93 <= coverage <= 0.97
    assert width <= width_classical
    if informative:
        assert width < 0.75 * width_classical  # the cheap metrics buy a clearly narrower interval
    else:
        assert width == pytest.approx(width_classical, rel=0.02)  # no information, no gain, but no loss either
