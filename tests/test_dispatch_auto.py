"""The ``auto`` strategy: it races while the race fits in free slots, hedges once in-flight reaches capacity, and
races again when the load drains; judged from the dispatcher's own in-flight counts, over real HTTP."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from typing import get_args

import pytest

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
    # fleet capacity 6; a race adds 3 requests: it fits while in-flight <= 3 and every host has a free slot
    for loads in [(0, 0, 0), (1, 1, 1), (2, 1, 1), (1, 2, 0), (2, 2, 2), (1, 1, 0), (0, 0, 0)]:
        for host, load in zip(hosts, loads, strict=True):
            health[host.name].in_flight = load
        plan = plan_call("auto", hosts, health)
        modes.append(plan.mode)
        assert (plan.mode == "race") == race_fits(hosts, health)
    assert modes == ["race", "race", "hedge", "hedge", "hedge", "race", "race"]
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


async def _auto_over_http() -> tuple[list[Generation], list[int], int]:
    fakes = [QueueingOllama(Reply.ok("ok", latency=0.4), max_concurrency=1, name=f"h{i}") for i in range(3)]
    for fake in fakes:
        fake.start()
    try:
        hosts = [Host(name=f"h{i}", url=fake.url, model="llama3.2", max_concurrency=1) for i, fake in enumerate(fakes)]
        fleet = Fleet(hosts=hosts, strategy="auto", timeout_s=20.0, hedge=HedgePolicy(delay_s=30.0))
        async with Dispatcher(fleet) as dispatcher:
            first = asyncio.create_task(dispatcher.generate(REQUEST))  # idle fleet: a race on every host
            await asyncio.sleep(0.1)
            in_flight = [snap.in_flight for snap in dispatcher.health().values()]
            second = asyncio.create_task(dispatcher.generate(REQUEST))  # every slot taken: a single hedged request
            await asyncio.sleep(0.05)
            in_flight_after = sum(snap.in_flight for snap in dispatcher.health().values())
            loaded = await asyncio.gather(first, second)
            while sum(snap.in_flight for snap in dispatcher.health().values()):
                await asyncio.sleep(0.02)
            await asyncio.sleep(ArrivalLoad().horizon_s + 0.1)  # quiet long enough to forget the load it had
            drained = await dispatcher.generate(REQUEST)  # load gone: racing again
        return [*loaded, drained], in_flight, in_flight_after
    finally:
        for fake in fakes:
            fake.stop()


def test_auto_races_hedges_and_races_again_over_http() -> None:
    (first, second, drained), in_flight, in_flight_after = asyncio.run(_auto_over_http())
    assert in_flight == [1, 1, 1]
    assert {a.host for a in first.attempts if a.outcome != "skipped"} == {"h0", "h1", "h2"}
    sent = [a for a in second.attempts if a.outcome != "skipped"]
    assert len(sent) == 1 and in_flight_after <= 4  # one request (hedge delay 30 s): no race onto busy hosts
    assert len([a for a in drained.attempts if a.outcome != "skipped"]) == 3


def test_auto_does_not_race_into_a_gap_when_the_fleet_is_usually_busy() -> None:
    """A momentary gap at high load is not spare capacity: the race must also fit at the load calls usually find."""
    hosts = _hosts(slots=2)  # capacity 6; a race adds 3
    health = {h.name: HostHealth(h.name) for h in hosts}
    assert race_fits(hosts, health, typical_in_flight=3.4)  # about 3 in flight: the race's 3 still fit
    assert not race_fits(hosts, health, typical_in_flight=3.6)
    assert plan_call("auto", hosts, health, 4.0).mode == "hedge"
    assert plan_call("auto", hosts, health, 0.5).mode == "race"


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
    quiet = ArrivalLoad(horizon_s=1.0)
    quiet.observe(6, 0.0)
    assert quiet.observe(0, 0.5) == pytest.approx(5.4)
    assert quiet.observe(0, 1.6) == 0.0
