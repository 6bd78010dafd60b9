"""Host health (breaker, latency window), hedge delay, ranking and budgets: pure parts, checked against numpy/scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.config.fleet import BreakerPolicy, HedgePolicy, Host
from harness.dispatch.health import HostHealth, LatencyWindow, quantile
from harness.dispatch.hedge_budget import HedgeBudget
from harness.dispatch.hedging import MIN_SAMPLES, hedge_delay, rank_hosts


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_quantile_matches_numpy(q: float) -> None:
    values = sorted(np.random.default_rng(7).lognormal(0, 1, size=137).tolist())
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12)


def test_window_keeps_only_the_last_samples() -> None:
    window = LatencyWindow(size=5)
    window.extend([10.0, 10.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(window) == 5
    assert window.quantile(1.0) == 5.0
    assert window.quantile(0.5) == 3.0
    assert LatencyWindow().quantile(0.5) is None


def test_typical_quantile_recovers_lognormal_body_despite_stragglers() -> None:
    rng = np.random.default_rng(3)
    body = rng.lognormal(np.log(0.2), 0.35, size=2000)
    stragglers = rng.lognormal(np.log(2.0), 0.35, size=110)  # ~5% at 10x
    window = LatencyWindow(size=5000)
    window.extend(np.concatenate([body, stragglers]).tolist())
    truth = stats.lognorm(s=0.35, scale=0.2).ppf(0.95)
    assert window.typical_quantile(0.95) == pytest.approx(truth, rel=0.1)
    # The empirical p95 sits in the straggler tail, far above the body's p95.
    assert window.quantile(0.95) > 2 * truth


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    clock = ManualClock()
    health = HostHealth("a", BreakerPolicy(failures=3, cooldown_s=30.0), clock=clock)
    for _ in range(2):
        assert health.acquire() == "normal"
        health.record_failure("normal")
    health.record_success("normal")  # a success resets the run of failures
    for _ in range(2):
        health.record_failure("normal")
    assert health.state == "closed"
    health.record_failure("normal")
    assert health.state == "open"
    assert health.acquire() is None
    assert health.skip_reason() == "breaker open"
    assert health.snapshot().reopens_in_s == pytest.approx(30.0)

    clock.now += 29.9
    assert health.state == "open"
    clock.now += 0.1
    assert health.state == "half_open"
    assert health.acquire() == "probe"
    assert health.acquire() is None  # one probe at a time
    assert health.skip_reason() == "breaker half-open (probe in flight)"

    health.record_failure("probe")  # the probe failed: open for another cooldown
    assert health.state == "open"
    clock.now += 30.0
    assert health.acquire() == "probe"
    health.record_cancelled("probe", reached=True)  # lost a race: the slot frees, still half-open
    assert health.state == "half_open"
    assert health.acquire() == "probe"
    health.record_success("probe")
    assert health.state == "closed"
    assert health.acquire() == "normal"
    snap = health.snapshot()
    assert (snap.successes, snap.failures, snap.cancelled, snap.consecutive_failures) == (2, 6, 1, 0)


def test_lost_races_end_a_run_of_failures_but_a_request_that_never_arrived_does_not() -> None:
    health = HostHealth("a", BreakerPolicy(failures=3))
    for _ in range(10):  # a host that mostly loses races and sometimes fails stays closed
        health.record_failure("normal")
        health.record_failure("normal")
        health.record_cancelled("normal", reached=True)
    assert health.state == "closed"
    health.record_failure("normal")
    health.record_cancelled("normal", reached=False)  # cancelled before it reached the host: no evidence either way
    health.record_failure("normal")
    assert health.state == "closed"
    health.record_failure("normal")
    assert health.state == "open"


def test_hedge_delay_fixed_initial_and_adaptive() -> None:
    health = HostHealth("a")
    assert hedge_delay(HedgePolicy(delay_s=0.3), health) == 0.3
    assert hedge_delay(HedgePolicy(initial_delay_s=0.7), health) == 0.7
    health.latency.extend([0.1] * (MIN_SAMPLES - 1))
    assert hedge_delay(HedgePolicy(initial_delay_s=0.7), health) == 0.7
    # Uniform latencies: the empirical p95 is the smaller estimate, and is used.
    health = HostHealth("b")
    values = np.linspace(0.1, 0.3, 200).tolist()
    health.latency.extend(values)
    assert hedge_delay(HedgePolicy(), health) == pytest.approx(float(np.quantile(values, 0.95)))
    # Never below the floor.
    fast = HostHealth("c")
    fast.latency.extend([0.001] * 50)
    assert hedge_delay(HedgePolicy(min_delay_s=0.05), fast) == 0.05


def test_rank_hosts_prefers_healthy_fast_and_idle_hosts() -> None:
    hosts = [Host(name=n, url="http://127.0.0.1:1", model="m", max_concurrency=4) for n in "abcd"]
    clock = ManualClock()
    health = {h.name: HostHealth(h.name, BreakerPolicy(failures=1, cooldown_s=10), clock=clock) for h in hosts}
    assert [h.name for h in rank_hosts(hosts, health)] == ["a", "b", "c", "d"]
    health["a"].latency.extend([0.5] * MIN_SAMPLES)
    health["b"].latency.extend([0.2] * MIN_SAMPLES)
    health["c"].latency.extend([0.2] * MIN_SAMPLES)
    health["c"].in_flight = 2  # busy: expected 0.3
    health["d"].record_failure("normal")  # open
    assert [h.name for h in rank_hosts(hosts, health)] == ["b", "c", "a", "d"]
    clock.now += 10
    health["b"].record_failure("normal")
    # d is half-open now (ranks after closed hosts), b just opened (last).
    assert [h.name for h in rank_hosts(hosts, health)] == ["c", "a", "d", "b"]


def test_a_host_ranks_as_fast_until_its_window_holds_enough_samples() -> None:
    """One straggling first answer must not bury a host: until it has MIN_SAMPLES latencies it ranks as fast (and,
    idle, ahead of busy measured hosts), so it keeps being tried; once measured, a slow host ranks behind."""
    hosts = [Host(name=n, url="http://127.0.0.1:1", model="m", max_concurrency=2) for n in "ab"]
    health = {h.name: HostHealth(h.name) for h in hosts}
    health["a"].latency.extend([0.2] * MIN_SAMPLES)
    health["a"].in_flight = 1
    health["b"].latency.add(2.0)  # its first answer straggled
    assert [h.name for h in rank_hosts(hosts, health)] == ["b", "a"]
    health["b"].latency.extend([2.0] * (MIN_SAMPLES - 1))  # measured now, and slow
    assert [h.name for h in rank_hosts(hosts, health)] == ["a", "b"]


def test_hedge_budget_token_bucket() -> None:
    bucket = HedgeBudget(0.25, burst=2.0, initial=0.0)
    granted = 0
    for _ in range(100):
        bucket.deposit()
        granted += bucket.try_hedge()
    assert granted == 25
    for _ in range(100):  # a quiet spell fills the bucket only up to the burst
        bucket.deposit()
    assert bucket.tokens == 2.0
    bucket.charge_failover()
    bucket.charge_failover()
    bucket.charge_failover()
    assert bucket.tokens == -1.0  # failovers are never refused; they run the bucket into debt
    assert not bucket.try_hedge()
    assert HedgeBudget(0.0).try_hedge() is False
