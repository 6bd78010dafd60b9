"""The ``auto`` strategy: it races while the race fits on top of the fleet's usual load, hedges once requests wait at
a host or the usual load leaves no room, and races again when the load drains; judged from the dispatcher's own
in-flight counts, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import threading
from typing import get_args

import pytest
from _wait import GENEROUS_S, until

from harness.config.fleet import BreakerPolicy, Fleet, HedgePolicy, Host, Strategy
from harness.dispatch import Dispatcher
from harness.dispatch.auto import ArrivalLoad, race_fits
from harness.dispatch.health import HostHealth
from harness.dispatch.strategies import STRATEGIES, plan_call
from harness.fakes import QueueingOllama, Reply
from harness.providers.types import Generation, GenerationRequest

REQUEST = GenerationRequest(prompt="Does Marlow County require ice barrier in valleys?", max_tokens=16)


def _hosts(slots: int, n: int = 3) -> list[Host]:
    return [Host(name=f"h{i}", url=f"http://127.0.0.1:{9000 + i}", model="m", max_concurrency=slots) for i in range(n)]


def test_registry_serves_exactly_the_config_strategies() -> None:
    assert set(STRATEGIES) == set(get_args(Strategy))


def test_auto_switches_as_in_flight_crosses_capacity_and_back() -> None:
    hosts = _hosts(slots=2)
    health = {h.name: HostHealth(h.name) for h in hosts}
    modes = []
    # fleet capacity 6; a race adds 3 requests: it fits while the in-flight requests (none racing here) are <= 3
    # and no host has requests waiting (a host at its limit takes the race's request into its queue)
    for loads in [(0, 0, 0), (1, 1, 1), (2, 1, 1), (1, 2, 0), (2, 2, 2), (3, 0, 0), (1, 1, 0), (0, 0, 0)]:
        for host, load in zip(hosts, loads, strict=True):
            health[host.name].in_flight = load
        plan = plan_call("auto", hosts, health)
        modes.append(plan.mode)
        assert (plan.mode == "race") == race_fits(hosts, health)
    assert modes == ["race", "race", "hedge", "race", "hedge", "hedge", "race", "race"]
    # the hedge plan puts the least loaded host first (no latency history yet, so load decides)
    health["h0"].in_flight, health["h1"].in_flight, health["h2"].in_flight = 2, 1, 2
    plan = plan_call("auto", hosts, health)
    assert plan.mode == "hedge" and plan.hosts[0].name == "h1"


def test_auto_does_not_race_onto_hosts_whose_breaker_is_open() -> None:
    hosts = _hosts(slots=1, n=2)
    clock = [0.0]
    health = {h.name: HostHealth(h.name, BreakerPolicy(failures=1, cooldown_s=60), clock=lambda: clock[0])
              for h in hosts}
    health["h1"].record_failure("normal")
    assert not race_fits(hosts, health)  # one host left: nothing to race


async def _auto_over_http() -> tuple[list[Generation], list[list[int]]]:
    release = threading.Event()  # every answer waits for it, so nothing finishes while the test looks
    fakes = [QueueingOllama(Reply.ok("ok", until=release), max_concurrency=1, name=f"h{i}") for i in range(3)]
    for fake in fakes:
        fake.start()
    try:
        hosts = [Host(name=f"h{i}", url=fake.url, model="llama3.2", max_concurrency=1) for i, fake in enumerate(fakes)]
        fleet = Fleet(hosts=hosts, strategy="auto", timeout_s=GENEROUS_S, hedge=HedgePolicy(delay_s=GENEROUS_S))
        async with Dispatcher(fleet) as dispatcher:
            load = dispatcher._state.arrival_load  # noqa: SLF001
            horizon_s, load.horizon_s = load.horizon_s, math.inf  # a stalled test must not look like a quiet fleet

            calls: list[asyncio.Task[Generation]] = []

            def in_flight() -> list[int]:
                return [snap.in_flight for snap in dispatcher.health().values()]

            async def call_once_placed(total: int) -> list[int]:
                """Start a call and wait until its requests are placed: the fleet's in-flight sum reaches ``total``
                (a race places its requests in one step, so it would overshoot, never stop short)."""
                calls.append(asyncio.create_task(dispatcher.generate(REQUEST)))
                assert await until(lambda: sum(in_flight()) >= total), in_flight()
                return in_flight()

            counts = [await call_once_placed(3)]  # idle fleet: a race on every host
            counts.append(await call_once_placed(6))  # every slot taken, none waiting: race
            counts.append(await call_once_placed(9))  # one race waiting: race behind it
            counts.append(await call_once_placed(10))  # two waiting: one hedged request
            # each host holds the first race's request; the others wait for its one slot in the dispatcher
            assert await until(lambda: all(fake.generations == 1 for fake in fakes))
            release.set()
            loaded = await asyncio.gather(*calls)
            assert await until(lambda: sum(in_flight()) == 0)
            load.horizon_s = horizon_s
            await asyncio.sleep(horizon_s + 0.1)  # quiet at least the horizon: the load it had is forgotten
            drained = await dispatcher.generate(REQUEST)  # load gone: racing again
        return [*loaded, drained], counts
    finally:
        for fake in fakes:
            fake.stop()


def test_auto_races_hedges_and_races_again_over_http() -> None:
    calls, counts = asyncio.run(_auto_over_http())
    assert counts[:3] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert sum(counts[3]) == 10  # the fourth call sent one request (hedge delay 30 s), no race onto deeper queues
    sent = [[a.host for a in call.attempts if a.outcome != "skipped"] for call in calls]
    assert [len(hosts) for hosts in sent] == [3, 3, 3, 1, 3]


def test_auto_does_not_race_into_a_gap_when_the_fleet_is_usually_busy() -> None:
    """A momentary gap at high load is not spare capacity: the race must also fit at the load calls usually find."""
    hosts = _hosts(slots=2)  # capacity 6; a race adds 3
    health = {h.name: HostHealth(h.name) for h in hosts}
    assert race_fits(hosts, health, typical_in_flight=3.4)  # about 3 in flight: the race's 3 still fit
    assert not race_fits(hosts, health, typical_in_flight=3.6)
    assert plan_call("auto", hosts, health, 4.0).mode == "hedge"
    assert plan_call("auto", hosts, health, 0.5).mode == "race"


def test_auto_races_behind_races_but_not_into_a_burst() -> None:
    """Two overlapping races fill a light fleet for a moment; their requests leave together as each race is won, so
    a third race waits briefly, and hedging instead would give the call the hedge's tail; so may a fourth behind one
    waiting race request. The same fullness made of other calls is a burst the usual load has not caught up with
    yet, and any other queue is overload."""
    hosts = _hosts(slots=2)
    health = {h.name: HostHealth(h.name) for h in hosts}
    for host in hosts:
        health[host.name].in_flight = health[host.name].racing = 2
    assert race_fits(hosts, health, typical_in_flight=1.2)
    for host in hosts:
        health[host.name].racing = 0
    assert not race_fits(hosts, health, typical_in_flight=1.2)
    for host in hosts:
        health[host.name].racing = 2
    health["h0"].in_flight = 3  # a request of another kind waits at h0
    assert not race_fits(hosts, health, typical_in_flight=1.2)
    for host in hosts:  # one race's request waits at every host: it leaves when that race is won
        health[host.name].in_flight = health[host.name].racing = 3
    assert race_fits(hosts, health, typical_in_flight=1.2)
    for host in hosts:  # two wait: a burst of races piling up
        health[host.name].in_flight = health[host.name].racing = 4
    assert not race_fits(hosts, health, typical_in_flight=1.2)


def test_arrival_load_is_the_time_average_under_poisson_arrivals() -> None:
    """PASTA, checked by simulation against a known truth: an M/M/inf system with arrival rate 8 and mean service
    0.5 holds 4 requests on average; the mean of what Poisson arrivals find converges to it."""
    rng = random.Random(11)
    clock, departures, load = 0.0, [], ArrivalLoad(weight=0.002, horizon_s=math.inf)
    seen = []
    for _ in range(40_000):
        clock += rng.expovariate(8.0)
        departures = [t for t in departures if t > clock]
        seen.append(load.observe(len(departures), clock))
        departures.append(clock + rng.expovariate(2.0))
    assert statistics.fmean(seen[10_000:]) == pytest.approx(4.0, abs=0.15)
    assert load.mean is not None and abs(load.mean - 4.0) < 1.0
    # a fleet quiet for longer than the horizon forgets its old load at the next arrival
    quiet = ArrivalLoad(weight=0.1, horizon_s=1.0)
    quiet.observe(6, 0.0)
    assert quiet.observe(0, 0.5) == pytest.approx(5.4)
    assert quiet.observe(0, 1.6) == 0.0


async def _latency_samples_after(strategy: Strategy) -> dict[str, int]:
    latencies = (0.05, 0.3, 0.3)
    fakes = [QueueingOllama(Reply.ok("ok", latency=latencies[i]), max_concurrency=4, name=f"h{i}") for i in range(3)]
    for fake in fakes:
        fake.start()
    try:
        hosts = [Host(name=f"h{i}", url=fake.url, model="llama3.2", max_concurrency=4) for i, fake in enumerate(fakes)]
        async with Dispatcher(Fleet(hosts=hosts, strategy=strategy, timeout_s=10.0)) as dispatcher:
            for _ in range(4):
                await dispatcher.generate(REQUEST)
            return {name: snap.samples for name, snap in dispatcher.health().items()}
    finally:
        for fake in fakes:
            fake.stop()


def test_races_leave_the_latency_windows_that_time_hedges_alone() -> None:
    """A race's winner is the fastest of n hosts and its losers are cut at the winner's time: as samples they would
    tell the slow hosts' windows ~50 ms, and auto's hedges, timed from those windows, would fire far too early."""
    assert asyncio.run(_latency_samples_after("race")) == {"h0": 0, "h1": 0, "h2": 0}
    assert sum(asyncio.run(_latency_samples_after("least_loaded")).values()) == 4
