"""The knee of a latency-vs-load curve, and where one box becomes the bottleneck. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.capacity.summary import PointSummary

DEFAULT_MAX_FAILURE = 0.05  # a point whose failure rate exceeds this does not hold the SLO, however fast its answers


@dataclass(frozen=True)
class Knee:
    """The highest offered rate at which a strategy held the SLO, counting up from the lowest rate measured.

    ``rate`` is ``None`` when even the lowest rate broke it (``note`` says so). ``bounded`` is False when the highest
    rate measured still held: the true knee lies beyond the sweep.
    """

    strategy: str
    hosts: int
    rate: float | None
    p99_s: float | None
    first_breach: float | None
    bounded: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def holds_slo(point: PointSummary, slo_s: float, max_failure: float = DEFAULT_MAX_FAILURE) -> bool:
    """p99 of answered calls at most ``slo_s``, and the failure rate at most ``max_failure``."""
    p99 = point.p("p99")
    failure = point.failure_rate.estimate
    return p99 is not None and p99 <= slo_s and failure is not None and failure <= max_failure


def find_knee(points: Sequence[PointSummary], slo_s: float, max_failure: float = DEFAULT_MAX_FAILURE) -> Knee:
    """The knee of one series (one strategy on one fleet): walk up the offered rates until the SLO breaks.

    Only the prefix that holds counts: a noisy pass above a breach is not trusted as headroom.
    """
    if not points:
        raise ValueError("no load points")
    ordered = sorted(points, key=lambda p: p.offered_rate)
    best: PointSummary | None = None
    for point in ordered:
        if not holds_slo(point, slo_s, max_failure):
            return Knee(
                point.strategy,
                point.hosts,
                None if best is None else best.offered_rate,
                None if best is None else best.p("p99"),
                point.offered_rate,
                True,
                None if best is not None else f"the lowest rate measured ({point.offered_rate:g}/s) breaks the SLO",
            )
        best = point
    assert best is not None
    return Knee(
        best.strategy, best.hosts, best.offered_rate, best.p("p99"), None, False,
        f"held the SLO up to the highest rate measured ({best.offered_rate:g}/s); the knee lies beyond",
    )


@dataclass(frozen=True)
class Bottleneck:
    """Single box vs fleet: the volume at which one box stops holding the SLO, and what the fleet holds instead."""

    one_box_knee: float | None
    one_box_breaks_at: float | None  # the lowest measured rate where one box broke the SLO
    fleet_strategy: str | None
    fleet_knee: float | None
    calls_per_day_one_box: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bottleneck(one_box: Knee, fleet_knees: Sequence[Knee]) -> Bottleneck:
    """Compare the one-box knee with the best fleet knee."""
    measured = [k for k in fleet_knees if k.rate is not None]
    best = max(measured, key=lambda k: k.rate or 0.0) if measured else None
    return Bottleneck(
        one_box_knee=one_box.rate,
        one_box_breaks_at=one_box.first_breach,
        fleet_strategy=None if best is None else best.strategy,
        fleet_knee=None if best is None else best.rate,
        calls_per_day_one_box=None if one_box.rate is None else one_box.rate * 86400.0,
    )
