"""Intervals: the one :class:`Interval` type every estimate with an interval is given as, and the intervals that are
not bootstrap tests of a comparison. Pure functions over numbers; vectorised with numpy.

* :func:`paired_gap`: mean of ``local - cloud`` over cases where both were measured, with a 95% interval from a
  paired bootstrap, or from a cluster-robust standard error when cases share a document.
* :func:`min_detectable_difference`: the gap a two-sided t-test at this standard error would detect with 80% power.
* :func:`wilson_interval`: Wilson score interval of a proportion (a confident-but-wrong rate, a failure rate).
* :func:`quantile_interval`: a quantile (a latency p99) with its distribution-free order-statistic interval.

Below :data:`MIN_CASES` measured pairs no interval is given: the result says "too few cases" instead of printing an
interval a bootstrap of two values would make look precise. Reports use the same threshold.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

from harness.errors import InputError

__all__ = [
    "MIN_CASES",
    "Interval",
    "bootstrap_group_means",
    "bootstrap_mean_intervals",
    "cluster_robust_se",
    "min_detectable_difference",
    "paired_gap",
    "percentile_intervals",
    "quantile_interval",
    "wilson_interval",
]

#: Fewest measured pairs for which an interval is shown.
MIN_CASES = 5
# Resample in blocks of about this many draws, so 2,000 resamples of 10,000 cases stay within memory.
_BLOCK_DRAWS = 4_000_000

Values = Sequence[float | int | bool | None] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval, or the reason it has none.

    ``low``/``high`` are ``None`` when ``reason`` says why (too few cases, nothing measured). ``se`` is the standard
    error the interval implies (the bootstrap's standard deviation for a bootstrap). ``df`` is the degrees of freedom
    that go with ``se`` for a t-based power figure. ``n`` counts the measured values behind the estimate,
    ``n_unmeasured`` the values left out because they were not measured.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    method: str
    confidence: float = 0.95
    se: float | None = None
    df: int | None = None
    reason: str | None = None
    n_unmeasured: int = 0

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def as_float_array(values: Values, what: str) -> np.ndarray:
    try:
        array = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} holds a value that is not a number", hint="pass numbers, None if unmeasured") from exc
    if np.isinf(array).any():
        raise InputError(f"{what} holds an infinite value", hint="pass finite numbers, None if unmeasured")
    return array


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence {confidence!r} is not between 0 and 1", hint="use e.g. 0.95")


def bootstrap_group_means(samples: Sequence[np.ndarray], *, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Resampled means, shape (n_resamples, groups): each group resampled with replacement within itself.

    Draws are made a block of resamples at a time (at most ~4 million indices), so memory stays bounded. The rows
    also give a stratified bootstrap of any weighted total of the groups: ``means @ (sizes / sizes.sum())`` is the
    resampled overall mean when the groups (categories) are fixed by design.
    """
    if n_resamples < 1:
        raise InputError(f"n_resamples {n_resamples!r} is not positive", hint="use e.g. 2000")
    if any(sample.size == 0 for sample in samples):
        raise InputError("a bootstrap group is empty", hint="drop groups with no measured values first")
    rng = np.random.default_rng(seed)
    means = np.empty((n_resamples, len(samples)), dtype=np.float64)
    for column, sample in enumerate(samples):
        block = max(1, _BLOCK_DRAWS // sample.size)
        for start in range(0, n_resamples, block):
            stop = min(start + block, n_resamples)
            picks = rng.integers(0, sample.size, size=(stop - start, sample.size))
            means[start:stop, column] = sample[picks].mean(axis=1)
    return means


def percentile_intervals(means: np.ndarray, *, confidence: float = 0.95) -> list[tuple[float, float, float]]:
    """(low, high, standard deviation) of each column of resampled means: the percentile bootstrap interval."""
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    lows, highs = np.quantile(means, [tail, 1.0 - tail], axis=0)
    spread = means.std(axis=0, ddof=1) if means.shape[0] > 1 else np.zeros(means.shape[1])
    return [(float(lo), float(hi), float(sd)) for lo, hi, sd in zip(lows, highs, spread, strict=True)]


def bootstrap_mean_intervals(
    samples: Sequence[np.ndarray], *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> list[tuple[float, float, float]]:
    """Percentile bootstrap (low, high, standard deviation of the resampled means) for each sample's mean."""
    check_confidence(confidence)
    return percentile_intervals(bootstrap_group_means(samples, n_resamples=n_resamples, seed=seed),
                                confidence=confidence)


def cluster_robust_se(values: np.ndarray, clusters: Sequence[Hashable]) -> tuple[float, int]:
    """Cluster-robust standard error of a mean, and the number of clusters G.

    With residuals e_i = x_i - mean and cluster sums S_g = sum of e_i in g:
    SE^2 = G / (G - 1) * sum_g S_g^2 / n^2 (the CR1 estimator; for a mean it equals statsmodels'
    ``OLS(x, 1).fit(cov_type="cluster")`` standard error).
    """
    codes = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)[1]
    groups = int(codes.max()) + 1 if codes.size else 0
    if groups < 2:
        raise InputError("a clustered standard error needs at least two clusters", hint="pass more documents")
    residuals = values - values.mean()
    sums = np.bincount(codes, weights=residuals, minlength=groups)
    n = values.size
    return math.sqrt(groups / (groups - 1) * float(np.sum(sums**2)) / n**2), groups


def paired_gap(
    local: Values,
    cloud: Values,
    *,
    clusters: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean paired difference ``local - cloud`` over the cases where both tiers were measured.

    Negative means the local tier scores lower. The interval is a percentile paired bootstrap over cases, unless
    ``clusters`` (one label per case, e.g. the case's source document) puts two or more cases in one cluster: then
    cases are not independent, and the interval is mean ± t(G-1) × the cluster-robust standard error.
    """
    check_confidence(confidence)
    a, b = as_float_array(local, "local"), as_float_array(cloud, "cloud")
    if a.shape != b.shape:
        raise InputError(
            f"paired inputs differ in length: local has {a.size}, cloud has {b.size}",
            hint="pass one value per case for both tiers, in the same case order (None where unmeasured)",
        )
    if clusters is not None and len(clusters) != a.size:
        raise InputError(f"{len(clusters)} cluster labels for {a.size} cases", hint="pass one label per case")
    both = ~(np.isnan(a) | np.isnan(b))
    d = (a - b)[both]
    n = int(d.size)
    if n == 0:
        return Interval(None, None, None, 0, "none", confidence, reason="no case was measured on both tiers")
    estimate = float(d.mean())
    if n < MIN_CASES:
        return Interval(estimate, None, None, n, "none", confidence,
                        reason=f"too few cases for an interval (n={n}, need {MIN_CASES})")
    kept = [c for c, keep in zip(clusters, both, strict=True) if keep] if clusters is not None else None
    if kept is not None and len(set(map(str, kept))) < n:
        if len(set(map(str, kept))) < 2:
            return Interval(estimate, None, None, n, "cluster-robust t (1 document)", confidence,
                            reason="every case shares one source document, so the cases are not independent evidence")
        se, groups = cluster_robust_se(d, kept)
        t = float(sps.t.ppf(0.5 + confidence / 2.0, groups - 1))
        return Interval(estimate, estimate - t * se, estimate + t * se, n, f"cluster-robust t ({groups} documents)",
                        confidence, se, groups - 1)
    [(low, high, spread)] = bootstrap_mean_intervals([d], confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Interval(estimate, low, high, n, "paired bootstrap", confidence, spread, n - 1)


def min_detectable_difference(se: float | None, df: int | None, *, alpha: float = 0.05, power: float = 0.8
                              ) -> float | None:
    """Smallest true difference a two-sided t-test at ``alpha`` detects with probability ``power``.

    Solves power(delta) = P(|T| > t_crit) for T ~ noncentral t(df, delta / se) — the same power function as
    statsmodels' ``TTestPower`` (with se = sd / sqrt(n) and df = n - 1). None without a standard error; 0 when the
    standard error is 0 (every difference identical).
    """
    if se is None or df is None or df < 1:
        return None
    if se == 0:
        return 0.0
    crit = float(sps.t.ppf(1 - alpha / 2, df))

    def shortfall(delta: float) -> float:
        nc = delta / se
        # The far tail underflows to NaN in scipy for large noncentrality; it is 0 there.
        tails = np.nan_to_num([sps.nct.sf(crit, df, nc), sps.nct.cdf(-crit, df, nc)])
        return float(tails.sum()) - power

    upper = se * (crit + 5.0)  # power at this noncentrality is above 0.99 for any df >= 1 and power <= 0.99
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-12 * max(1.0, upper)))


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson score interval of the proportion ``successes / n``.

    centre = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) × sqrt(p(1-p)/n + z²/4n²); unlike the Wald
    interval it stays inside [0, 1] and is not empty at 0 or n successes.
    """
    check_confidence(confidence)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise InputError(f"{successes} successes out of {n} is not a proportion", hint="pass 0 <= successes <= n")
    if n == 0:
        return Interval(None, None, None, 0, "Wilson", confidence, reason="nothing was measured")
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, "Wilson", confidence)


def quantile_interval(values: Values, q: float, *, confidence: float = 0.95) -> Interval:
    """Sample quantile (numpy's linear method) with a distribution-free interval from order statistics.

    The number of values below the true ``q`` quantile is Binomial(n, q). With the n values sorted, the interval runs
    from the l-th to the (u+1)-th smallest, where l and u are that binomial's (1 - confidence)/2 and
    (1 + confidence)/2 quantiles: it holds the true quantile with at least about ``confidence`` probability, whatever
    the distribution.

    When l would be 0 or u+1 past n, the sample has no order statistic far enough out for that end, and there is no
    interval: the reason says how many values would give one (e.g. a p99 from 50 calls). Clamping the bound to the
    smallest or largest value instead would print an interval whose coverage is below ``confidence`` (for the first
    quartile of 6 values, [smallest, 5th smallest] covers it 82% of the time, not 95%) while calling it a 95% interval.
    """
    check_confidence(confidence)
    if not 0.0 < q < 1.0:
        raise InputError(f"quantile {q!r} is not between 0 and 1", hint="use e.g. 0.95")
    x = as_float_array(values, "values")
    measured = ~np.isnan(x)
    x = np.sort(x[measured])
    n, unmeasured = int(x.size), int((~measured).sum())
    method = "order statistics"
    if n == 0:
        return Interval(None, None, None, 0, method, confidence, reason="nothing was measured", n_unmeasured=unmeasured)
    estimate = float(np.quantile(x, q))
    tail = (1.0 - confidence) / 2.0
    low_rank = int(sps.binom.ppf(tail, n, q))  # values below the lower bound; it is the low_rank-th smallest
    high_rank = int(sps.binom.ppf(1.0 - tail, n, q))  # the upper bound is the (high_rank + 1)-th smallest
    if low_rank < 1 or high_rank >= n:
        return Interval(estimate, None, None, n, method, confidence, n_unmeasured=unmeasured,
                        reason=f"too few values for a {confidence:.0%} interval of the {q:.0%} quantile "
                               f"(n={n}, about {_values_for_quantile_interval(q, tail)} needed)")
    return Interval(estimate, float(x[low_rank - 1]), float(x[high_rank]), n, method, confidence,
                    n_unmeasured=unmeasured)


def _values_for_quantile_interval(q: float, tail: float) -> int:
    """The fewest values with both order statistics inside the sample: (1 - q)^n < tail for the lower end (some value
    below it), q^n <= tail for the upper end."""
    lower = math.floor(math.log(tail) / math.log(1.0 - q)) + 1
    upper = math.ceil(math.log(tail) / math.log(q))
    return max(lower, upper)
