"""Statistics for A/B comparisons of per-case scores. Pure functions returning small frozen dataclasses.

Unmeasured values are ``None`` (``NaN`` is read the same way, since pandas turns ``None`` into ``NaN`` in float
columns). They are excluded and counted in ``n_unmeasured``, never averaged in as 0. Paired functions drop a pair
when either side is unmeasured.

* :func:`bootstrap_mean_ci`: percentile bootstrap CI of a mean.
* :func:`paired_bootstrap_ci`: percentile bootstrap CI of the mean paired difference ``candidate - baseline``.
* :func:`sign_flip_test`: paired permutation (sign-flip) test of the mean difference, exact for small samples.
* :func:`wilcoxon_test`: Wilcoxon signed-rank test (wraps :func:`scipy.stats.wilcoxon`).
* :func:`mcnemar_exact`: McNemar's exact test for paired pass/fail outcomes: the one McNemar policy. The binomial
  is exact at every count and costs nothing to compute, so there is no switch to the chi-square approximation (which
  only approximates it, and would make a p-value jump at the switch).
* :func:`holm`: Holm–Bonferroni adjustment of several p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.errors import InputError
from harness.metrics.stats.intervals import Interval, bootstrap_mean_intervals, check_confidence

__all__ = [
    "HolmResult",
    "McNemarResult",
    "PairedTest",
    "bootstrap_mean_ci",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "sign_flip_test",
    "wilcoxon_test",
]

Values = Sequence[float | int | bool | None]

# Draw sign flips in blocks of about this many, so 10,000 resamples of 10,000 cases stay within memory.
_BLOCK_DRAWS = 4_000_000


@dataclass(frozen=True)
class PairedTest:
    """A paired two-sided test of ``candidate`` against ``baseline``.

    ``statistic`` is the test's own statistic (the mean difference for the sign-flip test, the signed-rank sum
    for Wilcoxon). ``p_value`` is ``None`` when no pair was measured.
    """

    method: str
    statistic: float | None
    p_value: float | None
    n: int
    n_unmeasured: int


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on paired pass/fail outcomes.

    ``baseline_only``: pairs where only the baseline passed; ``candidate_only``: only the candidate passed. Only
    these discordant pairs carry information; ``p_value`` is two-sided, 1.0 when there are none.
    """

    p_value: float | None
    baseline_only: int
    candidate_only: int
    both: int
    neither: int
    n: int
    n_unmeasured: int


@dataclass(frozen=True)
class HolmResult:
    """Holm-adjusted p-values, in input order (``None`` stays ``None``), and which are rejected at ``alpha``."""

    adjusted: tuple[float | None, ...]
    reject: tuple[bool | None, ...]
    alpha: float
    m: int


# ---------------------------------------------------------------------------------------------- input handling


def _is_unmeasured(value: object) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _as_float(value: object, what: str, i: int) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}[{i}] is {value!r}, not a number", hint="pass numbers, or None if unmeasured") from exc
    if math.isinf(number):
        raise InputError(f"{what}[{i}] is infinite", hint="pass finite numbers, or None if unmeasured")
    return number


def _measured(values: Values, what: str) -> tuple[np.ndarray, int]:
    kept = [_as_float(v, what, i) for i, v in enumerate(values) if not _is_unmeasured(v)]
    return np.asarray(kept, dtype=np.float64), len(values) - len(kept)


def _paired(baseline: Values, candidate: Values) -> tuple[np.ndarray, np.ndarray, int]:
    if len(baseline) != len(candidate):
        raise InputError(
            f"paired inputs differ in length: baseline has {len(baseline)}, candidate has {len(candidate)}",
            hint="pass one value per case for both sides, in the same case order (None where unmeasured)",
        )
    a, b = [], []
    for i, (x, y) in enumerate(zip(baseline, candidate, strict=True)):
        if _is_unmeasured(x) or _is_unmeasured(y):
            continue
        a.append(_as_float(x, "baseline", i))
        b.append(_as_float(y, "candidate", i))
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), len(baseline) - len(a)


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise InputError(f"n_resamples {n_resamples!r} is not positive", hint="use e.g. 10000")


# ------------------------------------------------------------------------------------------------- bootstrap


def _percentile_ci(x: np.ndarray, n_unmeasured: int, confidence: float, n_resamples: int, seed: int) -> Interval:
    check_confidence(confidence)
    _check_resamples(n_resamples)
    method = "percentile bootstrap"
    if x.size == 0:
        return Interval(None, None, None, 0, method, confidence, reason="nothing was measured",
                        n_unmeasured=n_unmeasured)
    [(low, high, spread)] = bootstrap_mean_intervals([x], confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Interval(float(x.mean()), low, high, int(x.size), method, confidence, spread, int(x.size) - 1,
                    n_unmeasured=n_unmeasured)


def bootstrap_mean_ci(
    values: Values, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile bootstrap confidence interval of the mean of the measured values.

    Resample the ``n`` measured values with replacement ``n_resamples`` times; the interval runs between the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means. Seeded: the same input
    and seed give the same interval.
    """
    x, n_unmeasured = _measured(values, "values")
    return _percentile_ci(x, n_unmeasured, confidence, n_resamples, seed)


def paired_bootstrap_ci(
    baseline: Values, candidate: Values, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile bootstrap CI of the mean paired difference ``candidate - baseline``.

    Cases are resampled as pairs (the bootstrap of the per-case differences), which keeps the case-to-case
    correlation between the two sides. A positive estimate means the candidate scores higher.
    """
    a, b, n_unmeasured = _paired(baseline, candidate)
    return _percentile_ci(b - a, n_unmeasured, confidence, n_resamples, seed)


# ------------------------------------------------------------------------------------------------ paired tests


def sign_flip_test(baseline: Values, candidate: Values, *, n_resamples: int = 10_000, seed: int = 0) -> PairedTest:
    """Paired permutation test of the mean difference ``d = candidate - baseline`` by random sign flips.

    Under the null hypothesis each difference is as likely to have the opposite sign, so the null distribution
    of ``T = mean(d)`` is that of ``mean(s * d)`` over signs ``s`` in ``{-1, +1}^n``. The two-sided p-value is
    ``P(|T*| >= |T|)``. When ``2**n <= n_resamples`` (and ``n <= 16``) every sign vector is enumerated (exact
    p-value, as ``scipy.stats.permutation_test`` does for ``permutation_type="samples"``); otherwise
    ``n_resamples`` random ones are drawn and ``p = (count + 1) / (n_resamples + 1)``, which is never 0.
    """
    _check_resamples(n_resamples)
    a, b, n_unmeasured = _paired(baseline, candidate)
    d = b - a
    n = d.size
    if n == 0:
        return PairedTest("sign-flip", None, None, 0, n_unmeasured)
    observed = float(d.mean())
    # Comparisons allow for rounding so that exact ties with the observed statistic count as "as extreme".
    tolerance = 1e-12 * max(1.0, abs(observed))
    exact = n <= 16 and 2**n <= n_resamples
    if exact:
        bits = (np.arange(2**n, dtype=np.uint64)[:, None] >> np.arange(n, dtype=np.uint64)) & np.uint64(1)
        signs = 1.0 - 2.0 * bits.astype(np.float64)
        null = signs @ d / n
        p = float(np.mean(np.abs(null) >= abs(observed) - tolerance))
    else:
        rng = np.random.default_rng(seed)
        count = 0
        block = max(1, _BLOCK_DRAWS // n)
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
            count += int(np.sum(np.abs(signs @ d / n) >= abs(observed) - tolerance))
        p = (count + 1) / (n_resamples + 1)
    return PairedTest("sign-flip exact" if exact else "sign-flip", observed, min(1.0, p), n, n_unmeasured)


def wilcoxon_test(baseline: Values, candidate: Values) -> PairedTest:
    """Wilcoxon signed-rank test of ``candidate - baseline`` (two-sided), via :func:`scipy.stats.wilcoxon`.

    Zero differences are dropped (scipy's default ``zero_method="wilcox"``). When every difference is zero
    there is no evidence of a difference: ``statistic`` is 0 and ``p_value`` 1.0.
    """
    a, b, n_unmeasured = _paired(baseline, candidate)
    d = b - a
    if d.size == 0:
        return PairedTest("wilcoxon", None, None, 0, n_unmeasured)
    if not np.any(d):
        return PairedTest("wilcoxon", 0.0, 1.0, int(d.size), n_unmeasured)
    result = sps.wilcoxon(d, alternative="two-sided")
    return PairedTest("wilcoxon", float(result.statistic), float(result.pvalue), int(d.size), n_unmeasured)


def _as_pass(value: object, what: str, i: int) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    raise InputError(
        f"{what}[{i}] is {value!r}, not a pass/fail outcome", hint="pass True/False or 1/0, None if unmeasured"
    )


def mcnemar_exact(baseline: Sequence[bool | int | float | None], candidate: Sequence[bool | int | float | None]
                  ) -> McNemarResult:
    """McNemar's exact test for paired binary outcomes (e.g. hit@5 pass/fail per case).

    With ``b`` = pairs where only the baseline passed and ``c`` = only the candidate passed, under the null
    ``b ~ Binomial(b + c, 1/2)``. The two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))`` for
    ``X ~ Binomial(b + c, 1/2)``; 1.0 when ``b + c == 0``.
    """
    if len(baseline) != len(candidate):
        raise InputError(
            f"paired inputs differ in length: baseline has {len(baseline)}, candidate has {len(candidate)}",
            hint="pass one outcome per case for both sides, in the same case order (None where unmeasured)",
        )
    b = c = both = neither = unmeasured = 0
    for i, (x, y) in enumerate(zip(baseline, candidate, strict=True)):
        if _is_unmeasured(x) or _is_unmeasured(y):
            unmeasured += 1
            continue
        px, py = _as_pass(x, "baseline", i), _as_pass(y, "candidate", i)
        if px and py:
            both += 1
        elif px:
            b += 1
        elif py:
            c += 1
        else:
            neither += 1
    n = b + c + both + neither
    if n == 0:
        p = None
    elif b + c == 0:
        p = 1.0
    else:
        p = min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), b + c, 0.5)))
    return McNemarResult(p, b, c, both, neither, n, unmeasured)


# ------------------------------------------------------------------------------------------- multiple tests


def holm(p_values: Sequence[float | None], *, alpha: float = 0.05) -> HolmResult:
    """Holm–Bonferroni step-down adjustment of ``m`` p-values (``None`` entries are skipped and stay ``None``).

    Sort the p-values ascending, ``p_(1) <= ... <= p_(m)``. The adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``; a hypothesis is rejected when its adjusted p-value is
    ``<= alpha``. This controls the family-wise error rate at ``alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha {alpha!r} is not between 0 and 1", hint="use e.g. 0.05")
    present = [i for i, p in enumerate(p_values) if not _is_unmeasured(p)]
    values = np.array([_as_float(p_values[i], "p_values", i) for i in present], dtype=np.float64)
    if np.any((values < 0) | (values > 1)):
        bad = present[int(np.flatnonzero((values < 0) | (values > 1))[0])]
        raise InputError(f"p_values[{bad}] is {p_values[bad]!r}, outside [0, 1]", hint="pass p-values")
    m = values.size
    adjusted: list[float | None] = [None] * len(p_values)
    reject: list[bool | None] = [None] * len(p_values)
    if m:
        order = np.argsort(values, kind="stable")
        scaled = np.minimum(1.0, (m - np.arange(m)) * values[order])
        stepped = np.maximum.accumulate(scaled)
        for rank, idx in enumerate(order):
            adjusted[present[idx]] = float(stepped[rank])
            reject[present[idx]] = bool(stepped[rank] <= alpha)
    return HolmResult(tuple(adjusted), tuple(reject), alpha, m)
