"""Prediction-powered inference for a mean, in its power-tuned form (PPI++).

References: Angelopoulos, Bates, Fannjiang, Jordan, Zrnic (2023), "Prediction-powered inference", Science 382;
Angelopoulos, Duchi, Zrnic (2023), "PPI++: Efficient Prediction-Powered Inference", arXiv:2311.01453.

Setting: ``n`` labelled cases with a gold label Y (the Claude grade) and a cheap prediction f (from the answer metrics),
and ``N`` other cases with only the prediction. The estimate of E[Y] is

    theta(lambda) = mean(Y) + lambda × (mean(f_unlabelled) - mean(f_labelled))

which is unbiased for any fixed lambda (the prediction's bias cancels). Its variance is

    Var = lambda² Var(f) / N + Var(Y - lambda f) / n,

minimised by lambda* = Cov(Y, f) / ((1 + n/N) Var(f)), estimated from the data and clipped to [0, 1], as in the
authors' ``ppi_py``. lambda = 0 is the grades-only (classical) estimate, so the tuned estimate is never
asymptotically worse than it; lambda = 1 is the original PPI. The interval is estimate ± z × sqrt(Var).

The labelled cases must be a random sample of all cases (within the group being estimated); the unlabelled set is
the remaining cases, disjoint from the labelled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.errors import InputError
from harness.metrics.stats.intervals import MIN_CASES, Interval, Values, as_float_array, check_confidence

__all__ = ["PPIEstimate", "ppi_mean"]


@dataclass(frozen=True)
class PPIEstimate:
    """A PPI++ estimate beside the grades-only estimate it improves on.

    ``ppi`` is the prediction-powered interval; ``classical`` the normal interval from the labels alone, on the same
    labelled cases. ``lam`` is the power-tuning weight used (0: the predictions did not help).
    """

    ppi: Interval
    classical: Interval
    lam: float | None
    n_labelled: int
    n_unlabelled: int


def ppi_mean(
    labels: Values,
    predictions_labelled: Values,
    predictions_unlabelled: Values,
    *,
    confidence: float = 0.95,
    lam: float | None = None,
) -> PPIEstimate:
    """PPI++ estimate and interval of the mean label, with ``lam`` tuned from the data unless given.

    Labelled cases missing a label or a prediction are dropped; unlabelled cases missing a prediction are dropped.
    Below :data:`MIN_CASES` labels there is no interval, only the reason.
    """
    check_confidence(confidence)
    y = as_float_array(labels, "labels")
    f = as_float_array(predictions_labelled, "predictions_labelled")
    if y.shape != f.shape:
        raise InputError(
            f"{y.size} labels but {f.size} predictions for the labelled cases",
            hint="pass one prediction per labelled case, in the same order",
        )
    keep = ~(np.isnan(y) | np.isnan(f))
    y, f = y[keep], f[keep]
    u = as_float_array(predictions_unlabelled, "predictions_unlabelled")
    u = u[~np.isnan(u)]
    n, big_n = int(y.size), int(u.size)
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    if n == 0:
        empty = Interval(None, None, None, 0, "PPI++", confidence, reason="no graded case")
        return PPIEstimate(empty, Interval(None, None, None, 0, "grades only", confidence, reason="no graded case"),
                           None, 0, big_n)
    classical = _normal_interval(float(y.mean()), float(y.std()) / math.sqrt(n), n, "grades only", confidence, z)
    if n < MIN_CASES or big_n == 0:
        reason = (f"too few graded cases for an interval (n={n}, need {MIN_CASES})" if n < MIN_CASES
                  else "no ungraded case with a prediction, so nothing to add to the grades")
        ppi = Interval(classical.estimate, classical.low, classical.high, n, "PPI++ (grades only)", confidence,
                       classical.se, n - 1, reason=reason if n < MIN_CASES else None)
        return PPIEstimate(ppi, classical, 0.0 if big_n == 0 else None, n, big_n)
    if lam is None:
        lam = _tuned_lambda(y, f, u)
    estimate = float(y.mean() + lam * (u.mean() - f.mean()))
    variance = lam * lam * float(u.var()) / big_n + float((y - lam * f).var()) / n
    ppi = _normal_interval(estimate, math.sqrt(variance), n, "PPI++", confidence, z)
    return PPIEstimate(ppi, classical, float(lam), n, big_n)


def _tuned_lambda(y: np.ndarray, f: np.ndarray, u: np.ndarray) -> float:
    """lambda* = Cov(Y, f) / ((1 + n/N) Var(f)), Var(f) over labelled and unlabelled predictions; clipped to [0, 1]."""
    n, big_n = y.size, u.size
    every = np.concatenate([f, u])
    var_f = float(every.var(ddof=1)) if every.size > 1 else 0.0
    if var_f == 0.0:
        return 0.0  # a constant prediction carries no information
    cov = float(np.mean((y - y.mean()) * (f - every.mean())))
    return float(np.clip(cov / ((1.0 + n / big_n) * var_f), 0.0, 1.0))


def _normal_interval(estimate: float, se: float, n: int, method: str, confidence: float, z: float) -> Interval:
    if n < MIN_CASES:
        return Interval(estimate, None, None, n, method, confidence, se, n - 1,
                        reason=f"too few graded cases for an interval (n={n}, need {MIN_CASES})")
    return Interval(estimate, estimate - z * se, estimate + z * se, n, method, confidence, se, n - 1)
