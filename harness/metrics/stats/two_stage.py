"""Two-stage prediction-powered inference: people ⊂ graded ⊂ answered.

Three nested samples of one population of answers (or of case-level local - cloud differences):

- every answered unit has a cheap prediction f (the answer metrics);
- a random sample G of them has the grader's grade g;
- a random sample L of the graded ones has a person's label y, the gold standard.

The target is E[y], the mean a person would give. The estimate corrects the grader-based PPI++ estimate by the
grader's mean error measured where both exist:

    theta = theta_G + mean_L(y - g),    theta_G = mean_G(g) + mu (mean_U(f) - mean_G(f))   (PPI++, U = answered \\ G)

Each term is unbiased for its part (E[g] and E[y - g]) because G and L are random samples, so theta is unbiased for
E[y] whatever the grader's bias. The correction's weight is fixed at 1 (not power-tuned): the point of it is to
remove the grader's bias, and a weight below 1 would leave part of it in.

The terms share units (L ⊂ G), and a gap's two tiers share cases, so the variance comes from the estimate's
influence function summed within clusters (a cluster-robust sandwich): every term adds ``(x_i - mean)/n`` to its
unit's cluster, and Var(theta) = sum over clusters of (sum of what the cluster got)². Each term's contributions are
scaled by sqrt(n/(n-1)) so a single mean's variance is the usual s²/n. The interval is a t interval with
Welch–Satterthwaite degrees of freedom (the labelled sample is small: 30-60 answers), which brings the coverage of
2,000 simulated replications from about 93.5% (normal) to the nominal 95%.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from harness.metrics.stats.intervals import MIN_CASES, Interval, check_confidence
from harness.metrics.stats.ppi import _tuned_lambda

__all__ = ["Influence", "combine", "mean_term", "ppi_term", "two_stage_mean"]

ESTIMATOR = "two-stage PPI (people ⊂ graded ⊂ answered)"


@dataclass
class Influence:
    """An estimate built from sample means, with every unit's share of its error (its influence) and its cluster."""

    estimate: float
    parts: list[tuple[Sequence[Hashable], np.ndarray]] = field(default_factory=list)

    def add(self, clusters: Sequence[Hashable], contributions: np.ndarray, sign: float = 1.0) -> None:
        self.parts.append((clusters, sign * np.asarray(contributions, dtype=float)))

    @property
    def se(self) -> float:
        """sqrt of the sum over clusters of the squared summed influence."""
        index: dict[Hashable, int] = {}
        codes = np.fromiter((index.setdefault(c, len(index)) for clusters, _ in self.parts for c in clusters),
                            dtype=np.int64)
        values = np.concatenate([values for _, values in self.parts]) if self.parts else np.zeros(0)
        sums = np.bincount(codes, weights=values, minlength=len(index))
        return float(math.sqrt(float(np.sum(sums * sums))))


def _scaled(x: np.ndarray) -> np.ndarray:
    n = x.size
    if n < 2:
        return np.zeros_like(x)
    scaled: np.ndarray = (x - x.mean()) / n * math.sqrt(n / (n - 1))
    return scaled


def mean_term(x: np.ndarray, clusters: Sequence[Hashable]) -> Influence:
    """The sample mean of ``x`` with its influence per unit."""
    term = Influence(float(x.mean()) if x.size else math.nan)
    term.add(clusters, _scaled(x))
    return term


def ppi_term(g: np.ndarray, f_g: np.ndarray, g_clusters: Sequence[Hashable], f_u: np.ndarray,
             u_clusters: Sequence[Hashable], lam: float | None = None) -> Influence:
    """PPI++ mean of the grade: mean_G(g) + mu (mean_U(f) - mean_G(f)), mu tuned as in :mod:`ppi`."""
    if f_u.size == 0:
        return mean_term(g, g_clusters)
    mu = _tuned_lambda(g, f_g, f_u) if lam is None else lam
    term = Influence(float(g.mean() + mu * (f_u.mean() - f_g.mean())))
    term.add(g_clusters, _scaled(g - mu * f_g))
    term.add(u_clusters, mu * _scaled(f_u))
    return term


def combine(terms: Sequence[tuple[float, Influence]]) -> Influence:
    """sum of sign × term; the influences are kept unit by unit, so terms sharing a cluster covary."""
    out = Influence(sum(sign * term.estimate for sign, term in terms))
    for sign, term in terms:
        for clusters, values in term.parts:
            out.add(clusters, values, sign)
    return out


def normal_interval(term: Influence, n: int, method: str, confidence: float, reason: str | None = None,
                    df: float | None = None) -> Interval:
    """estimate ± q × se, q from the t distribution with ``df`` degrees of freedom (default n - 1)."""
    check_confidence(confidence)
    if reason is not None or not math.isfinite(term.estimate):
        return Interval(None if not math.isfinite(term.estimate) else term.estimate, None, None, n, method,
                        confidence, reason=reason or "nothing to estimate from")
    dof = df if df is not None else max(n - 1, 1)
    q = float(sps.t.ppf(0.5 + confidence / 2.0, dof))
    se = term.se
    return Interval(term.estimate, term.estimate - q * se, term.estimate + q * se, n, method, confidence, se,
                    max(1, round(dof)))


def satterthwaite_df(terms: Sequence[tuple[Influence, int]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of terms, each with its variance and n - 1 df."""
    variances = [(term.se ** 2, max(n - 1, 1)) for term, n in terms]
    total = sum(v for v, _ in variances)
    spread = sum(v * v / d for v, d in variances)
    return total * total / spread if spread > 0 else float(max(n for _, n in terms) - 1)


def two_stage_mean(
    grade: np.ndarray,
    prediction: np.ndarray,
    clusters: Sequence[Hashable],
    corrections: Sequence[tuple[float, np.ndarray, Sequence[Hashable]]],
    *,
    confidence: float = 0.95,
) -> Interval:
    """E[person's score] from grades (NaN where ungraded), predictions (NaN where none) and the labelled errors.

    Args:
        grade, prediction, clusters: one entry per answered unit of the group estimated.
        corrections: (sign, ``y - g`` on labelled units, their clusters): the grader's error, person minus grader,
            possibly from a wider group than the one estimated (a bias pooled over categories). A gap local - cloud
            takes the local errors with sign +1 and the cloud's with -1; clusters may overlap ``clusters``.
    """
    graded = ~np.isnan(grade) & ~np.isnan(prediction)
    ungraded = np.isnan(grade) & ~np.isnan(prediction)
    ids = list(clusters)
    g_ids = [ids[i] for i in np.flatnonzero(graded)]
    u_ids = [ids[i] for i in np.flatnonzero(ungraded)]
    n_labelled = min((int(values.size) for _, values, _ in corrections), default=0)
    if int(graded.sum()) < MIN_CASES or n_labelled < MIN_CASES:
        reason = (f"too few graded units for an interval (n={int(graded.sum())}, need {MIN_CASES})"
                  if int(graded.sum()) < MIN_CASES else
                  f"too few labelled answers for a correction (n={n_labelled}, need {MIN_CASES})")
        return Interval(None, None, None, n_labelled, ESTIMATOR, confidence, reason=reason)
    base = ppi_term(grade[graded], prediction[graded], g_ids, prediction[ungraded], u_ids)
    fixes = [(sign, mean_term(values, list(ids)), int(values.size)) for sign, values, ids in corrections]
    df = satterthwaite_df([(base, int(graded.sum()))] + [(term, size) for _, term, size in fixes])
    return normal_interval(combine([(1.0, base)] + [(sign, term) for sign, term, _ in fixes]), n_labelled, ESTIMATOR,
                           confidence, df=df)
