"""Which host to try first, and how long to wait before hedging."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.config.fleet import HedgePolicy, Host
from harness.dispatch.health import HostHealth, LatencyWindow

# Below this many samples the window says too little; the policy's initial delay is used instead.
MIN_SAMPLES = 20


def hedge_delay(
    policy: HedgePolicy,
    health: HostHealth,
    *,
    pooled: LatencyWindow | None = None,
    min_samples: int = MIN_SAMPLES,
) -> float:
    """Seconds to wait on ``health``'s host before sending a hedge.

    A fixed ``policy.delay_s`` wins when set. Otherwise the delay is the host's recent ``policy.quantile`` latency:
    the smaller of the empirical quantile and the quantile of its typical latency
    (:meth:`LatencyWindow.typical_quantile`). The second guards against a straggler tail heavier than
    ``1 - quantile``: there the empirical p95 lands inside the stragglers, and a hedge sent that late barely helps.
    Taking the smaller of the two never hedges later than the plain empirical quantile. The delay is at least
    ``policy.min_delay_s``. A host with fewer than ``min_samples`` latencies borrows the fleet-wide ``pooled`` window
    (hosts of one fleet are usually alike); when that is thin too, ``policy.initial_delay_s`` applies.
    """
    if policy.delay_s is not None:
        return policy.delay_s
    window = health.latency
    if len(window) < min_samples:
        if pooled is None or len(pooled) < min_samples:
            return policy.initial_delay_s
        window = pooled
    empirical = window.quantile(policy.quantile)
    typical = window.typical_quantile(policy.quantile)
    candidates = [x for x in (empirical, typical) if x is not None]
    return max(policy.min_delay_s, min(candidates))


def rank_hosts(hosts: Sequence[Host], health: Mapping[str, HostHealth]) -> list[Host]:
    """Hosts best first: closed breakers by expected latency, then half-open ones, then open ones.

    Expected latency is the recent median scaled by how busy the host is (``1 + in_flight / max_concurrency``), so
    equal hosts share the load instead of the marginally fastest taking every call. A host with fewer than
    ``MIN_SAMPLES`` latencies ranks as fast, so it gets tried until its median means something. Ranked on its first
    few samples, a host whose early answers straggled was passed over for good, since its window never refreshed: in
    bench/capacity.py one host came out of hedge's warm-up with 2 latencies, median 931 ms, and hedge left it idle
    from 10 to 65 % load. Ties go to the less busy host, then keep the fleet file's order.
    """
    state_rank = {"closed": 0, "half_open": 1, "open": 2}

    def key(item: tuple[int, Host]) -> tuple[int, float, float, int]:
        order, host = item
        h = health[host.name]
        load = h.in_flight / host.max_concurrency
        p50 = (h.latency.quantile(0.5) or 0.0) if len(h.latency) >= MIN_SAMPLES else 0.0
        return state_rank[h.state], p50 * (1.0 + load), load, order

    return [host for _, host in sorted(enumerate(hosts), key=key)]


def least_loaded_first(hosts: Sequence[Host], health: Mapping[str, HostHealth]) -> list[Host]:
    """Hosts by breaker state, then requests in flight per slot (``in_flight / max_concurrency``), then recent median
    latency, then fleet-file order. Unlike :func:`rank_hosts`, load comes before speed: under load the queue a request
    would wait in matters more than a few milliseconds of service time."""
    state_rank = {"closed": 0, "half_open": 1, "open": 2}

    def key(item: tuple[int, Host]) -> tuple[int, float, float, int]:
        order, host = item
        h = health[host.name]
        return state_rank[h.state], h.in_flight / host.max_concurrency, h.latency.quantile(0.5) or 0.0, order

    return [host for _, host in sorted(enumerate(hosts), key=key)]
