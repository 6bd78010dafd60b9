"""The ``auto`` strategy's judgement: is there room for a race right now?

A race sends one request to every host, so an N-host race has the capacity of one host: at low load it cuts the tail,
at high load it multiplies queueing. ``auto`` races only while the race fits in the fleet's free slots, judged from
the in-flight counts and ``max_concurrency`` the dispatcher already tracks; otherwise it hedges, with hosts ranked by
recent latency scaled by load (:func:`~harness.dispatch.hedging.rank_hosts`).

Its hedges may go to a busy host. An earlier version held a hedge back unless its host had a free slot; under 80 %
load in bench/capacity.py that left stragglers (10x the median) unhedged, so auto's tail drifted toward
least_loaded's, while a hedge that waits in a short queue still beats a straggler. The hedge budget bounds the extra
load either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.config.fleet import Host
from harness.dispatch.health import HostHealth


def has_free_slot(host: Host, health: HostHealth) -> bool:
    """The host would start a request at once: fewer requests in flight than its ``max_concurrency``."""
    return health.in_flight < host.max_concurrency


def race_fits(hosts: Sequence[Host], health: Mapping[str, HostHealth]) -> bool:
    """Whether a race would start on every host without queueing and without filling the fleet.

    True when at least two hosts accept a request (breaker), each of them has a free slot, and the fleet's requests
    in flight plus one per racing host stay within the sum of their ``max_concurrency``:
    ``sum(in_flight) + n <= sum(max_concurrency)``. The second condition keeps races from taking the last free slots
    that arriving calls would otherwise find.
    """
    allowed = [host for host in hosts if health[host.name].skip_reason() is None]
    if len(allowed) < 2:
        return False
    if not all(has_free_slot(host, health[host.name]) for host in allowed):
        return False
    in_flight = sum(health[host.name].in_flight for host in allowed)
    return in_flight + len(allowed) <= sum(host.max_concurrency for host in allowed)
