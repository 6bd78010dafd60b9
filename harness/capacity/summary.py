"""One load point's figures: throughput, latency percentiles with intervals, failures, requests per call, busy share.

Pure. Latency percentiles are over answered calls, each with a distribution-free confidence interval from order
statistics (:func:`harness.metrics.stats.intervals.quantile_interval`); failures are counted in the failure rate, with
a Wilson interval. An interval that the sample cannot support (too few calls for a p99) has no bounds and says why in
``reason``, never a made-up bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.metrics.stats.intervals import Interval, quantile_interval, wilson_interval

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
    latency: dict[str, Interval]  # "p50" | "p95" | "p99" -> seconds
    failure_rate: Interval
    requests_per_call: float | None
    busy_share: dict[str, float]  # host -> share of its slot-seconds spent serving
    max_send_lag_s: float  # worst lag of the load generator behind the schedule
    errors: dict[str, int] = field(default_factory=dict)

    def p(self, name: str) -> float | None:
        return self.latency[name].estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantile_label(q: float) -> str:
    return f"p{q * 100:g}"


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
    latency = {quantile_label(q): quantile_interval(answered, q, confidence=CONFIDENCE) for q in QUANTILES}
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
        failure_rate=wilson_interval(failed, len(records), confidence=CONFIDENCE),
        requests_per_call=None if requests_sent is None or not records else requests_sent / len(records),
        busy_share=share,
        max_send_lag_s=max((r.sent_s - r.due_s for r in records), default=0.0),
        errors=dict(sorted(errors.items(), key=lambda item: -item[1])[:5]),
    )
