"""EWMA control chart for a run-level series (one value per run). Pure.

The EWMA follows the last ``recent`` runs (the latest included); the centre ``mu`` and spread ``sigma`` come from the
``window`` runs before those, so a shift that began a run or two ago does not leak into its own reference.
``sigma`` is the SD of those runs' values, floored by their typical sampling standard error (per-case SD / sqrt(n)):
a series that never moved (a deterministic retrieval) still gets the noise its case sample implies, so a
change smaller than that noise raises no alarm.

The chart: ``z_0 = mu``; ``z_t = lam * x_t + (1 - lam) * z_{t-1}`` over the recent runs; the
control limits at step ``t`` are ``mu ± L * sigma * sqrt(lam / (2 - lam) * (1 - (1 - lam)^(2t)))`` (Montgomery,
*Introduction to Statistical Quality Control*, §9.2), widened for the estimated centre (``+ (1 - (1 - lam)^t)^2 / m``
under the root, ``m`` reference runs) and, when sigma is the runs' own SD, for its estimation (``L`` read as the
Student-t quantile of the same tail on ``m - 1`` degrees of freedom). With ``lam = 0.3``, ``L = 3`` and ten earlier
runs, a single run three SDs off alarms about 7% of the time and an in-control run 0.35%, while three runs in a row
four SDs off alarm 90% of the time (``tests/test_history.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.errors import InputError


@dataclass(frozen=True)
class Drift:
    """The verdict on the latest run of one series. ``alarm`` is ``None`` when it could not be judged (``reason``)."""

    alarm: bool | None
    latest: float | None
    ewma: float | None
    centre: float | None
    low: float | None
    high: float | None
    sigma: float | None
    runs_used: int
    reason: str = ""


def ewma_drift(
    values: Sequence[float | None],
    standard_errors: Sequence[float | None] | None = None,
    *,
    window: int = 10,
    limit: float = 3.0,
    lam: float = 0.3,
    min_runs: int = 3,
    recent: int = 3,
) -> Drift:
    """Judge the last value of ``values`` (oldest first): EWMA of the ``recent`` last runs against limits from the
    ``window`` runs before them."""
    if not 0 < lam <= 1:
        raise InputError(f"lambda {lam!r} is not in (0, 1]", hint="use e.g. 0.3")
    if limit <= 0 or window < 2:
        raise InputError("the control limit must be positive and the window at least 2 runs",
                         hint="e.g. --limit 3 --window 10")
    ses = list(standard_errors) if standard_errors is not None else [None] * len(values)
    if not values or values[-1] is None or _nan(values[-1]):
        return Drift(None, None, None, None, None, None, None, 0, "the latest run did not measure this")
    latest = float(values[-1])
    earlier = [(float(v), s) for v, s in zip(values[:-1], ses[:-1], strict=True) if v is not None and not _nan(v)]
    if len(earlier) < min_runs:
        return Drift(None, latest, None, None, None, None, None, len(earlier),
                     f"{len(earlier)} earlier run(s) measured this; the chart needs {min_runs}")
    tracked_before = min(recent - 1, len(earlier) - min_runs)
    history = earlier[: len(earlier) - tracked_before][-window:]
    tracked = [v for v, _ in earlier[len(earlier) - tracked_before:]] + [latest]
    xs = np.array([v for v, _ in history])
    centre = float(xs.mean())
    spread = float(xs.std(ddof=1))
    floors = [float(s) for _, s in history if s is not None and not _nan(s)]
    floor = float(np.median(floors)) if floors else 0.0
    sigma = max(spread, floor)
    z = centre
    for x in tracked:
        z = lam * x + (1 - lam) * z
    t = len(tracked)
    if sigma == 0:
        alarm = latest != centre
        return Drift(alarm, latest, z, centre, centre, centre, 0.0, len(xs),
                     "every earlier run had the same value and no sampling error is known")
    # The reference mean is itself estimated from len(xs) runs, and sigma too: widen for both, so the false-alarm
    # rate stays near the normal-theory one of L (e.g. 0.27% for L = 3) however short the window.
    n_ref = len(xs)
    ewma_var = lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)) + (1 - (1 - lam) ** t) ** 2 / n_ref
    from_runs = spread >= floor  # a sigma from the sampling error is not estimated from these few runs
    level = float(sps.t.ppf(sps.norm.cdf(limit), df=n_ref - 1)) if from_runs else limit
    half = level * sigma * math.sqrt(ewma_var)
    return Drift(not (centre - half <= z <= centre + half), latest, z, centre, centre - half, centre + half, sigma,
                 len(xs))


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
