"""Which strategy and how many hosts hold the SLO at a daily volume with its peak. Pure.

The peak rate is ``volume / 86400 * peak_factor`` calls/s. A measured configuration (a strategy on the fleet, or one
box) holds it when its knee is at least the peak; headroom is ``knee / peak - 1``. When none does, the host count is
extrapolated from the best strategy that spreads load (not ``race``, whose capacity does not grow with hosts:
every call occupies every host), assuming capacity grows linearly with hosts, and the answer says it is an
extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.capacity.knee import Knee

SECONDS_PER_DAY = 86400.0
# Strategies whose capacity grows with hosts; "single" always calls the first host, so the one-box series stands for it.
SCALES_WITH_HOSTS = ("hedge", "least_loaded", "auto", "single (1 host)")


@dataclass(frozen=True)
class Recommendation:
    volume_per_day: float
    peak_factor: float
    peak_rate: float
    strategy: str | None
    hosts: int | None
    knee_rate: float | None
    headroom: float | None  # knee / peak - 1
    measured: bool  # False: hosts extrapolated beyond what was measured
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(volume_per_day: float, peak_factor: float, knees: Sequence[Knee]) -> Recommendation:
    """The cheapest measured configuration that holds the peak (fewest hosts, then most headroom)."""
    if volume_per_day <= 0 or peak_factor < 1:
        raise ValueError("volume must be positive and the peak factor at least 1")
    peak = volume_per_day / SECONDS_PER_DAY * peak_factor
    holding = [k for k in knees if k.rate is not None and k.rate >= peak]
    if holding:
        best = min(holding, key=lambda k: (k.hosts, -(k.rate or 0.0)))
        rate = best.rate or 0.0
        beyond = "" if best.bounded else " (the knee lies beyond the highest rate measured, so headroom is a floor)"
        return Recommendation(
            volume_per_day, peak_factor, peak, best.strategy, best.hosts, rate, rate / peak - 1, True,
            f"{best.strategy} on {best.hosts} host(s) held the SLO up to {rate:.3g} calls/s against a peak of "
            f"{peak:.3g} calls/s{beyond}",
        )
    scalable = [k for k in knees if k.rate is not None and k.strategy in SCALES_WITH_HOSTS]
    if not scalable:
        return Recommendation(
            volume_per_day, peak_factor, peak, None, None, None, None, False,
            "no strategy held the SLO at any measured rate; lower the rates swept or loosen --slo",
        )
    per_host = max(scalable, key=lambda k: (k.rate or 0.0) / k.hosts)
    rate_per_host = (per_host.rate or 0.0) / per_host.hosts
    hosts = math.ceil(peak / rate_per_host)
    return Recommendation(
        volume_per_day, peak_factor, peak, per_host.strategy, hosts, rate_per_host * hosts,
        rate_per_host * hosts / peak - 1, False,
        f"no measured configuration holds {peak:.3g} calls/s; {per_host.strategy} held {rate_per_host:.3g} calls/s "
        f"per host, so about {hosts} hosts (extrapolated: assumes capacity grows linearly with hosts)",
    )
