"""One load point's figures: throughput, latency percentiles with intervals, failures, requests per call, busy share.

Pure. Latency percentiles are over answered calls, each with a distribution-free confidence interval from order
statistics (the number of samples below the true ``q`` quantile is Binomial(n, q)); failures are counted in the
failure rate, with a Wilson interval. An interval that the sample cannot support (too few calls for a p99) is ``None``
with the reason in ``note``, never a made-up bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

QUANTILES = (0.50, 0.95, 0.99)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class CallRecord:
    """One scheduled call.

    Attributes:
        due_s: when it was due, seconds from the start of its load point.
        sent_s: when the load generator actually started it (``>= due_s``; the gap is the generator's own lag).
        latency_s: from ``due_s`` to the answer or the failure: queueing before the send counts.
        ok: answered.
        error: why not, when not.
    """

    due_s: float
    sent_s: float
    latency_s: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Estimate:
    """An estimate with its interval; ``low``/``high`` are ``None`` when the sample supports none (see ``note``)."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    note: str | None = None


@dataclass(frozen=True)
class PointSummary:
    """One strategy at one offered rate."""

    strategy: str
    hosts: int
    offered_rate: float
    calls: int
    answered: int
    failed: int
    elapsed_s: float
    throughput: float  # answered calls per second over the point's elapsed time
    latency: dict[str, Estimate]  # "p50" | "p95" | "p99" -> seconds
    failure_rate: Estimate
    requests_per_call: float | None
    busy_share: dict[str, float]  # host -> share of its slot-seconds spent serving
    max_send_lag_s: float  # worst lag of the load generator behind the schedule
    errors: dict[str, int] = field(default_factory=dict)

    def p(self, name: str) -> float | None:
        return self.latency[name].value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile_label(q: float) -> str:
    return f"p{q * 100:g}"


def quantile_ci(values: Sequence[float], q: float, confidence: float = CONFIDENCE) -> Estimate:
    """The ``q`` quantile (numpy's linear method) with a distribution-free interval from order statistics.

    With ``n`` sorted values, the true quantile lies between ``x[l]`` and ``x[u]`` with probability at least
    ``confidence`` when ``l`` and ``u`` are the binomial ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    of Binomial(n, q) (0-based ``l = ppf_lo - 1``, ``u = ppf_hi``). When ``u`` would run past the largest value, the
    sample is too small for an upper bound and the interval is ``None``.
    """
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0, "no answered calls")
    ordered = np.sort(np.asarray(values, dtype=float))
    value = float(np.quantile(ordered, q))
    alpha = 1.0 - confidence
    lo_rank = int(sps.binom.ppf(alpha / 2, n, q))  # number of values below the lower bound
    hi_rank = int(sps.binom.ppf(1 - alpha / 2, n, q)) + 1
    if lo_rank < 1 or hi_rank > n:
        need = math.ceil(-math.log(alpha / 2) / (1 - q)) if q > 0.5 else math.ceil(-math.log(alpha / 2) / q)
        return Estimate(value, None, None, n, f"too few calls for a {confidence:.0%} interval (about {need} needed)")
    return Estimate(value, float(ordered[lo_rank - 1]), float(ordered[hi_rank - 1]), n)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n == 0:
        return Estimate(None, None, None, 0, "no calls")
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def summarize(
    strategy: str,
    offered_rate: float,
    records: Sequence[CallRecord],
    *,
    elapsed_s: float,
    requests_sent: int | None,
    busy_s: Mapping[str, float],
    slots: Mapping[str, int],
    hosts: int,
) -> PointSummary:
    """Figures of one load point.

    Args:
        strategy: its name (a series label).
        offered_rate: calls/s the schedule offered.
        records: every scheduled call.
        elapsed_s: from the point's start to its last answer (or its cut-off).
        requests_sent: requests the hosts received over the point (``None`` if unknown).
        busy_s: host -> seconds its slots were held during the point.
        slots: host -> ``max_concurrency``.
        hosts: how many hosts served the point.
    """
    answered = [r.latency_s for r in records if r.ok]
    failed = len(records) - len(answered)
    errors: dict[str, int] = {}
    for r in records:
        if not r.ok:
            key = r.error or "unknown"
            errors[key] = errors.get(key, 0) + 1
    latency = {quantile_label(q): quantile_ci(answered, q) for q in QUANTILES}
    share = {
        name: (busy_s.get(name, 0.0) / (elapsed_s * slots[name]) if elapsed_s > 0 else 0.0) for name in slots
    }
    return PointSummary(
        strategy=strategy,
        hosts=hosts,
        offered_rate=offered_rate,
        calls=len(records),
        answered=len(answered),
        failed=failed,
        elapsed_s=elapsed_s,
        throughput=len(answered) / elapsed_s if elapsed_s > 0 else 0.0,
        latency=latency,
        failure_rate=wilson(failed, len(records)),
        requests_per_call=None if requests_sent is None or not records else requests_sent / len(records),
        busy_share=share,
        max_send_lag_s=max((r.sent_s - r.due_s for r in records), default=0.0),
        errors=dict(sorted(errors.items(), key=lambda item: -item[1])[:5]),
    )
