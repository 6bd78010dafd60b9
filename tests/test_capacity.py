"""Capacity: the Poisson schedule, intervals, the knee and the recommendation (pure), and open-loop latency that
includes queueing, checked against the Lindley recursion of a single-server queue fed the same schedule."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy import stats

from harness.capacity.knee import find_knee
from harness.capacity.loadgen import drive
from harness.capacity.recommend import recommend
from harness.capacity.schedule import poisson_schedule
from harness.capacity.summary import CallRecord, PointSummary, summarize
from harness.config.fleet import Fleet, Host
from harness.dispatch import Dispatcher
from harness.errors import InputError
from harness.fakes import QueueingOllama, Reply
from harness.metrics.stats.intervals import Interval
from harness.providers.types import GenerationRequest

REQUEST = GenerationRequest(prompt="What does R905.1.2 require for the ice barrier?", max_tokens=16)

# --- the schedule is Poisson -------------------------------------------------------------------------------------


def test_schedule_gaps_are_exponential_by_ks() -> None:
    rate = 40.0
    due = np.array(poisson_schedule(rate, 250.0, max_calls=100_000, seed=3))
    gaps = np.diff(np.concatenate([[0.0], due]))
    result = stats.kstest(gaps, "expon", args=(0, 1 / rate))
    assert result.pvalue > 0.01
    # and the count is what a Poisson process gives: within 4 sd of rate * duration
    assert abs(len(due) - rate * 250) < 4 * np.sqrt(rate * 250)


def test_schedule_counts_have_poisson_dispersion() -> None:
    rate, seconds = 12.0, 400
    due = poisson_schedule(rate, float(seconds), max_calls=100_000, seed=11)
    counts = np.histogram(due, bins=seconds, range=(0, seconds))[0]
    # index of dispersion test: (k - 1) var / mean ~ chi2(k - 1) for Poisson counts
    statistic = (len(counts) - 1) * counts.var(ddof=1) / counts.mean()
    p = 2 * min(stats.chi2.cdf(statistic, len(counts) - 1), stats.chi2.sf(statistic, len(counts) - 1))
    assert p > 0.01


def test_a_regular_schedule_fails_the_dispersion_test() -> None:
    """The test above has power: evenly spaced calls (under-dispersed) are rejected."""
    counts = np.histogram(np.arange(0, 400, 1 / 12), bins=400, range=(0, 400))[0]
    statistic = (len(counts) - 1) * counts.var(ddof=1) / counts.mean()
    assert stats.chi2.cdf(statistic, len(counts) - 1) < 0.001


def test_schedule_is_bounded_and_validated() -> None:
    assert len(poisson_schedule(1000.0, 60.0, max_calls=50, seed=0)) == 50
    assert max(poisson_schedule(5.0, 2.0, max_calls=1000, seed=0)) < 2.0
    with pytest.raises(InputError, match="rate"):
        poisson_schedule(0.0, 10.0, max_calls=10)


# --- knee and recommendation -------------------------------------------------------------------------------------


def _point(strategy: str, rate: float, p99: float, failure: float = 0.0, hosts: int = 4) -> PointSummary:
    est = Interval(p99, p99 * 0.9, p99 * 1.1, 500, "order statistics")
    return PointSummary(strategy, hosts, rate, 500, 500, 0, 10.0, rate, {"p50": est, "p95": est, "p99": est},
                        Interval(failure, 0.0, failure + 0.01, 500, "Wilson"), 1.0, {}, 0.0)


def test_knee_is_the_last_rate_of_the_passing_prefix() -> None:
    points = [_point("race", r, p) for r, p in [(5, 0.3), (10, 0.35), (15, 0.9), (20, 0.38)]]
    knee = find_knee(points, slo_s=0.4)
    assert knee.rate == 10 and knee.first_breach == 15 and knee.bounded
    assert find_knee([_point("race", 5, 0.5)], slo_s=0.4).rate is None
    open_ended = find_knee([_point("hedge", 5, 0.3), _point("hedge", 10, 0.3)], slo_s=0.4)
    assert open_ended.rate == 10 and not open_ended.bounded
    assert find_knee([_point("single", 5, 0.3, failure=0.2)], slo_s=0.4).rate is None


def test_recommendation_picks_fewest_hosts_that_hold_the_peak() -> None:
    knees = [
        find_knee([_point("race", 2, 0.3), _point("race", 4, 0.9)], 0.4),
        find_knee([_point("auto", 2, 0.3), _point("auto", 8, 0.35), _point("auto", 12, 0.9)], 0.4),
        find_knee([_point("single (1 host)", 1, 0.3, hosts=1), _point("single (1 host)", 3, 0.9, hosts=1)], 0.4),
    ]
    low = recommend(86400 * 0.5, 2.0, knees)  # peak 1 call/s: one box holds it
    assert (low.strategy, low.hosts, low.measured) == ("single (1 host)", 1, True)
    assert low.headroom == pytest.approx(0.0)
    mid = recommend(86400 * 2, 3.0, knees)  # peak 6/s: only auto on 4 hosts
    assert (mid.strategy, mid.hosts) == ("auto", 4) and mid.headroom == pytest.approx(8 / 6 - 1)
    high = recommend(86400 * 10, 3.0, knees)  # peak 30/s: beyond; auto gives 2/s per host -> 15 hosts
    assert (high.strategy, high.hosts, high.measured) == ("auto", 15, False)


# --- open-loop latency includes queueing --------------------------------------------------------------------------


def lindley_latencies(due: list[float], service_s: float) -> np.ndarray:
    """Sojourn times of a FIFO single-server queue with constant service: W' = max(0, W + S - gap)."""
    wait = 0.0
    out = []
    for i, t in enumerate(due):
        if i:
            wait = max(0.0, wait + service_s - (t - due[i - 1]))
        out.append(wait + service_s)
    return np.array(out)


async def _measure(service_s: float, due: list[float], *, queue_at: str) -> tuple[list[CallRecord], float]:
    """Open-loop records, and the effective service time (median of calls made one at a time, overhead included)."""
    server_slots, client_slots = (1, 64) if queue_at == "server" else (64, 1)
    fake = QueueingOllama(Reply.ok("ok", latency=service_s), max_concurrency=server_slots, name="box")
    async with fake:
        host = Host(name="box", url=fake.url, model="llama3.2", max_concurrency=client_slots)
        async with Dispatcher(Fleet(hosts=[host], strategy="single", timeout_s=30.0)) as dispatcher:
            alone = []
            for _ in range(8):
                began = asyncio.get_running_loop().time()
                await dispatcher.generate(REQUEST)
                alone.append(asyncio.get_running_loop().time() - began)
            records, _ = await drive(due, lambda _i: dispatcher.generate(REQUEST), grace_s=30.0)
        if queue_at == "server":
            assert fake.max_queued > 1  # the queue formed at the host, not in the dispatcher
    return records, float(np.median(alone))


@pytest.mark.parametrize("queue_at", ["dispatcher", "server"])
def test_latency_includes_queueing_and_rises_with_a_slowed_host(queue_at: str) -> None:
    due = poisson_schedule(4.0, 15.0, max_calls=200, seed=5)
    p99 = {}
    for service_s in (0.06, 0.12):  # the second host is slowed on purpose: utilisation about 0.3 -> 0.6
        records, effective = asyncio.run(_measure(service_s, due, queue_at=queue_at))
        assert all(r.ok for r in records)
        measured = np.array([r.latency_s for r in records])
        p99[service_s] = float(np.quantile(measured, 0.99))
        # Queueing is in the measurement: the p99 reaches the p99 of the queue with the scripted service time, a
        # lower bound (the real service time adds HTTP overhead, and a busy machine only adds more), where a
        # send-time clock would see about the service time alone. No upper bound: how much a shared machine adds
        # is not this test's business (bench/capacity.py prints the figures).
        queue_p99 = float(np.quantile(lindley_latencies(due, service_s), 0.99))
        assert p99[service_s] >= 0.95 * queue_p99
    # the slowed host really queues: its queue's p99, which the measurement reaches, is past twice the service time
    # and past the faster host's queue p99 by more than the service times differ
    slowed_p99 = float(np.quantile(lindley_latencies(due, 0.12), 0.99))
    assert slowed_p99 > 2 * 0.12
    assert slowed_p99 > float(np.quantile(lindley_latencies(due, 0.06), 0.99)) + 0.1
    assert p99[0.12] >= 0.95 * slowed_p99


def test_summary_counts_failures_and_busy_share() -> None:
    records = [CallRecord(0.0, 0.0, 0.1, True), CallRecord(0.1, 0.1, 0.2, False, "boom"),
               CallRecord(0.2, 0.25, 0.3, True)]
    point = summarize("x", 3.0, records, elapsed_s=1.0, requests_sent=6, busy_s={"a": 0.5}, slots={"a": 2}, hosts=1)
    assert (point.answered, point.failed, point.requests_per_call) == (2, 1, 2.0)
    assert point.busy_share == {"a": 0.25} and point.errors == {"boom": 1}
    assert point.max_send_lag_s == pytest.approx(0.05)
