"""The ``auto`` strategy's judgement: is there room for a race right now?

A race cuts the tail at low load and multiplies queueing at high load, so ``auto`` races only while the race fits on
top of the load calls usually find (:class:`ArrivalLoad`) and no host has requests waiting (:func:`race_fits`), and
hedges otherwise (load-aware and bound late: :mod:`harness.dispatch.dispatcher`). The bench/capacity.py figures
behind each rule are in the README ("Benchmarks").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.config.fleet import Host
from harness.dispatch.health import HostHealth


def queue_blocks_race(host: Host, health: HostHealth) -> bool:
    """Requests wait at the host (more in flight than its ``max_concurrency``), other than a single race's request.

    A race's request waiting at a host leaves the moment its race is won elsewhere, so one of them is a short wait.
    Every other queue blocks a race: any waiting request of another kind, or two or more race requests (in a burst
    on an idle fleet, races would pile up behind races until the usual load caught up).
    """
    waiting = health.in_flight - host.max_concurrency
    if waiting <= 0:
        return False
    return waiting > 1 or health.racing < health.in_flight


class ArrivalLoad:
    """The fleet's requests in flight as arriving calls find them: an exponentially weighted mean over recent calls.

    Every call weighs the same, which keeps the mean unbiased (weighting by the gap before a call would not: a call
    after a long gap finds the fleet emptier). A fleet quiet for longer than ``horizon_s`` has no usual load any more,
    so the next call starts the mean afresh.

    Args:
        weight: weight of the newest call (0.03: about the last thirty calls; a ten-call mean was noisy enough to
            let races through at 80 % load in bench/capacity.py, 1.20 requests per call against hedge's 1.09).
        horizon_s: a gap between calls longer than this forgets the old load.
    """

    def __init__(self, weight: float = 0.03, horizon_s: float = 1.0) -> None:
        self.weight = weight
        self.horizon_s = horizon_s
        self.mean: float | None = None
        self._last: float | None = None

    def observe(self, in_flight: int, now: float) -> float:
        """Record what a call arriving at ``now`` (seconds, any monotonic clock) found; returns the updated mean."""
        if self.mean is None or self._last is None or now - self._last > self.horizon_s:
            self.mean = float(in_flight)
        else:
            self.mean += self.weight * (in_flight - self.mean)
        self._last = now
        return self.mean


def race_fits(
    hosts: Sequence[Host], health: Mapping[str, HostHealth], typical_in_flight: float | None = None
) -> bool:
    """Whether a race fits: at least two hosts accept a request (breaker), none of them has requests waiting (bar one
    race's: :func:`queue_blocks_race`), and the race's n requests fit within the hosts' summed ``max_concurrency``
    twice over:

    * now, counting the requests in flight that are not themselves racing;
    * at the load the fleet usually carries (``typical_in_flight``, from :class:`ArrivalLoad`; None: the instant's).

    Races in flight do not count against a race now: their requests leave together as each is won, so a race behind
    them waits briefly, while hedging instead would give the call the hedge's tail (at 10 % of capacity in
    bench/capacity.py two overlapping races filled the fleet, 2-5 % of calls hedged, and auto's p99 came out 1.27x
    race's; with three overlapping, the hedged 2 % queued behind them and set the p99 again, 1.11x race's).
    Everything else counts: after a quiet spell the usual load lags a sudden burst, and the instant sees it.
    """
    allowed = [host for host in hosts if health[host.name].skip_reason() is None]
    if len(allowed) < 2 or any(queue_blocks_race(host, health[host.name]) for host in allowed):
        return False
    capacity = sum(host.max_concurrency for host in allowed)
    not_racing = sum(health[host.name].in_flight - health[host.name].racing for host in allowed)
    usual = not_racing if typical_in_flight is None else round(typical_in_flight)  # requests come whole
    return max(not_racing, usual) + len(allowed) <= capacity
