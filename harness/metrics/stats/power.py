"""Power of the gate's non-inferiority rule. Pure functions.

Normal approximations for a paired design with ``n`` pairs whose differences have standard deviation ``sd``
(``se = sd / sqrt(n)``):

* :func:`ni_fail_probability`: how often a non-inferiority check that fails when the lower bound of the two-sided
  ``confidence`` interval of the difference is below ``-margin`` fails, when the true difference is ``-drop``:
  ``P(d - z * se < -margin) = Phi((drop - margin) / se + z)``. With ``drop = 0`` this is the A/A false-fail rate.
* :func:`ni_size_for_power`: the smallest ``n`` whose A/A false-fail rate is at most ``max_aa_fail`` and whose
  chance of failing a true ``drop`` is at least ``power``.

McNemar's test has one form, the exact one (:func:`harness.metrics.stats.tests.mcnemar_exact`), in every table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps

from harness.errors import InputError


def _z(p: float) -> float:
    return float(sps.norm.ppf(p))


def _check(sd: float, n: int | None = None) -> None:
    if not math.isfinite(sd) or sd < 0:
        raise InputError(f"sd {sd!r} is not a finite non-negative number", hint="pass the SD of the paired differences")
    if n is not None and n < 1:
        raise InputError(f"n {n!r} is not positive", hint="pass the number of measured pairs")


def ni_fail_probability(drop: float, margin: float, sd: float, n: int, *, confidence: float = 0.95) -> float:
    """Chance that the non-inferiority check fails when the true difference is ``-drop``."""
    _check(sd, n)
    z = _z(1 - (1 - confidence) / 2)
    if sd == 0:
        return 1.0 if drop > margin else 0.0
    se = sd / math.sqrt(n)
    return float(sps.norm.cdf((drop - margin) / se + z))


@dataclass(frozen=True)
class SizeForPower:
    """The suite size that reaches ``power`` against ``drop`` with at most ``max_aa_fail`` A/A false fails.

    ``n`` is ``None`` when no size does, and ``reason`` says why.
    """

    n: int | None
    power: float
    max_aa_fail: float
    reason: str = ""


def ni_size_for_power(
    drop: float,
    margin: float,
    sd: float,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    max_aa_fail: float = 0.05,
) -> SizeForPower:
    """Smallest ``n`` meeting both the A/A bound and the power target (see the module docstring)."""
    _check(sd)
    if sd == 0:
        ok = drop > margin
        return SizeForPower(1 if ok else None, power, max_aa_fail, "" if ok else "a drop within the margin passes")
    z = _z(1 - (1 - confidence) / 2)
    # A/A: Phi(z - margin * sqrt(n) / sd) <= max_aa_fail
    low = ((z - _z(max_aa_fail)) * sd / margin) ** 2
    if drop >= margin:
        return SizeForPower(max(1, math.ceil(low - 1e-9)), power, max_aa_fail)
    # A drop inside the margin gets harder to fail as n grows: Phi(z - (margin - drop) sqrt(n) / sd) >= power
    high = ((z - _z(power)) * sd / (margin - drop)) ** 2 if z > _z(power) else 0.0
    n = max(1, math.ceil(low - 1e-9))
    if n > high:
        return SizeForPower(None, power, max_aa_fail, f"a drop of {drop:g} is inside the margin {margin:g}")
    return SizeForPower(n, power, max_aa_fail)
