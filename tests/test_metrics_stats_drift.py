"""Drift statistics against independent oracles: statsmodels, scipy, and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from harness.errors import InputError
from harness.metrics.stats.intervals import (
    MIN_CASES,
    bootstrap_mean_intervals,
    cluster_robust_se,
    min_detectable_difference,
    paired_gap,
    quantile_interval,
    wilson_interval,
)


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (10, 10), (1, 250), (37, 60)])
def test_wilson_matches_statsmodels(successes: int, n: int) -> None:
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    result = wilson_interval(successes, n)
    assert result.estimate == pytest.approx(successes / n)
    assert (result.low, result.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_quantile_interval_covers_the_true_quantile() -> None:
    rng = np.random.default_rng(0)
    true_p95 = sps.lognorm(0.5).ppf(0.95)
    covered = 0
    trials = 400
    for _ in range(trials):
        result = quantile_interval(rng.lognormal(0.0, 0.5, size=300), 0.95)
        assert result.low is not None and result.high is not None
        covered += result.low <= true_p95 <= result.high
    assert covered / trials >= 0.92  # nominal 95 %, order-statistic intervals are conservative


def test_quantile_interval_refuses_a_p99_from_too_few_calls() -> None:
    result = quantile_interval([0.1 * i for i in range(1, 51)], 0.99)
    assert result.estimate is not None and result.low is None and "about 368 needed" in str(result.reason)
    assert quantile_interval([0.1 * i for i in range(1, 368)], 0.99).low is None  # 367 values: 0.99^367 > 2.5%
    assert quantile_interval([0.1 * i for i in range(1, 369)], 0.99).has_interval
    assert quantile_interval([], 0.5).estimate is None


def test_quantile_interval_refuses_the_lower_edge_rather_than_clamp_it() -> None:
    """A first quartile of 6 values: no value lies far enough below it. Clamping the bound to the smallest value would
    give [x(1), x(5)], which covers the true quartile 82% of the time (simulated here), not the 95% it claims."""
    rng = np.random.default_rng(1)
    true_q1 = sps.expon.ppf(0.25)
    samples = np.sort(rng.exponential(size=(20_000, 6)), axis=1)
    clamped = np.mean((samples[:, 0] <= true_q1) & (true_q1 <= samples[:, 4]))
    assert clamped == pytest.approx(0.817, abs=0.01)
    result = quantile_interval(samples[0], 0.25)
    assert not result.has_interval and "about 13 needed" in str(result.reason)
    assert quantile_interval(samples[0, :5].tolist() + [1.0] * 8, 0.25).has_interval


def test_wilson_hand_value_and_nothing_measured() -> None:
    # 2 of 8 at 95%: z = 1.959964; centre = (0.25 + z²/16) / (1 + z²/8) = 0.3077; half-width 0.2491.
    result = wilson_interval(2, 8)
    assert result.low == pytest.approx(0.0715, abs=1e-4) and result.high == pytest.approx(0.5907, abs=1e-4)
    empty = wilson_interval(0, 0)
    assert empty.estimate is None and empty.reason == "nothing was measured"
    with pytest.raises(InputError):
        wilson_interval(5, 3)


@pytest.mark.parametrize("n", [6, 20, 200])
def test_mdd_matches_statsmodels_ttest_power(n: int) -> None:
    sd = 0.3
    effect = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    # statsmodels solves to about 1e-6, hence the tolerance.
    assert min_detectable_difference(sd / np.sqrt(n), n - 1) == pytest.approx(effect * sd, rel=1e-4)


def test_mdd_large_sample_approaches_the_normal_formula() -> None:
    # (z_0.975 + z_0.8) × se = 2.8016 × se for large df.
    assert min_detectable_difference(0.01, 100_000) == pytest.approx(0.028016, rel=1e-3)
    assert min_detectable_difference(None, 10) is None and min_detectable_difference(0.0, 10) == 0.0


def test_cluster_robust_se_matches_statsmodels_ols_cluster() -> None:
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(12), rng.integers(1, 6, size=12))
    values = rng.normal(size=clusters.size) + rng.normal(size=12)[clusters]
    fit = sm.OLS(values, np.ones_like(values)).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    se, groups = cluster_robust_se(values, list(clusters))
    assert groups == 12 and se == pytest.approx(float(fit.bse[0]), rel=1e-10)


def test_paired_gap_uses_clusters_when_cases_share_a_document() -> None:
    rng = np.random.default_rng(4)
    docs = [f"doc-{i // 3}" for i in range(30)]
    cloud = rng.uniform(0.5, 1.0, size=30)
    local = cloud - 0.1 + rng.normal(0, 0.05, size=30)
    gap = paired_gap(list(local), list(cloud), clusters=docs)
    d = local - cloud
    fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="cluster", cov_kwds={"groups": [int(x[4:]) for x in docs]})
    t = sps.t.ppf(0.975, 9)
    assert gap.method.startswith("cluster-robust") and gap.df == 9
    assert gap.estimate == pytest.approx(d.mean())
    assert gap.low == pytest.approx(d.mean() - t * fit.bse[0]) and gap.high == pytest.approx(d.mean() + t * fit.bse[0])
    one_document = paired_gap(list(local), list(cloud), clusters=["doc-0"] * 30)
    assert not one_document.has_interval and "one source document" in (one_document.reason or "")
    # One case per document: independent cases, so the paired bootstrap.
    assert paired_gap(list(local), list(cloud), clusters=[str(i) for i in range(30)]).method == "paired bootstrap"


def test_paired_bootstrap_agrees_with_the_t_interval_on_a_normal_sample() -> None:
    rng = np.random.default_rng(5)
    cloud = rng.uniform(0, 1, 400)
    local = cloud + rng.normal(-0.05, 0.2, 400)
    gap = paired_gap(list(local), list(cloud), n_resamples=4000)
    d = local - cloud
    low, high = sps.t.interval(0.95, d.size - 1, loc=d.mean(), scale=sps.sem(d))
    assert gap.method == "paired bootstrap" and gap.n == 400
    assert gap.low == pytest.approx(low, abs=0.004) and gap.high == pytest.approx(high, abs=0.004)
    assert gap.se == pytest.approx(sps.sem(d), rel=0.06)


def test_unmeasured_pairs_are_dropped_and_small_samples_get_no_interval() -> None:
    local = [1.0, None, 0.5, float("nan"), 0.0]
    cloud = [1.0, 1.0, None, 1.0, 1.0]
    gap = paired_gap(local, cloud)
    assert gap.n == 2 and gap.estimate == pytest.approx(-0.5)
    assert not gap.has_interval and gap.reason == f"too few cases for an interval (n=2, need {MIN_CASES})"
    nothing = paired_gap([None], [1.0])
    assert nothing.estimate is None and nothing.reason == "no case was measured on both tiers"
    with pytest.raises(InputError, match="differ in length"):
        paired_gap([1.0], [1.0, 2.0])


def test_grouped_bootstrap_matches_one_group_at_a_time_in_distribution() -> None:
    rng = np.random.default_rng(6)
    groups = [rng.normal(loc, 1.0, size) for loc, size in [(0.0, 50), (2.0, 300), (-1.0, 7)]]
    together = bootstrap_mean_intervals(groups, n_resamples=4000, seed=1)
    for sample, (low, high, spread) in zip(groups, together, strict=True):
        se = sample.std(ddof=1) / np.sqrt(sample.size)
        assert spread == pytest.approx(se * np.sqrt((sample.size - 1) / sample.size), rel=0.08)
        assert low < sample.mean() < high
        assert high - low == pytest.approx(2 * 1.96 * spread, rel=0.1)
