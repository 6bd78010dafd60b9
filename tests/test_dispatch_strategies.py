"""Dispatcher strategies against in-test providers that stand in for the network edge (asyncio.sleep, no HTTP).

The HTTP-level checks (connections closed, requests counted at the server) live in test_dispatch_fakes.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from _wait import GENEROUS_S, until

from harness.config.fleet import BreakerPolicy, Fleet, HedgePolicy, Host, HostCost
from harness.dispatch import Dispatcher
from harness.errors import FleetUnavailable, InputError, ProviderError
from harness.providers.base import HostStatus
from harness.providers.types import Generation, GenerationRequest

REQUEST = GenerationRequest(prompt="What does R&R mean on an estimate?")


@dataclass
class Step:
    """What the stand-in host does for one request: answer after ``delay`` (and once ``gate`` is set, if given), or
    fail with ``status``."""

    delay: float = 0.0
    status: int | None = None  # an HTTP status to fail with
    hang: bool = False
    gate: asyncio.Event | None = None  # the test sets it when the host may answer


@dataclass
class StandInProvider:
    """Implements the Provider protocol with asyncio.sleep; records what it was asked and when."""

    name: str
    steps: list[Step] = field(default_factory=list)
    default: Step = field(default_factory=Step)
    calls: list[float] = field(default_factory=list)  # perf_counter at each generate()
    cancelled: int = 0
    active: int = 0
    max_active: int = 0
    closed: bool = False

    async def generate(self, request: GenerationRequest) -> Generation:
        step = self.steps.pop(0) if self.steps else self.default
        self.calls.append(time.perf_counter())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        started = time.perf_counter()
        try:
            await asyncio.sleep(3600 if step.hang else step.delay)
            if step.gate is not None:
                await step.gate.wait()
            if step.status is not None:
                raise ProviderError(f"HTTP {step.status}", host=self.name, status=step.status, retryable=True)
            return Generation(
                text=f"answer from {self.name}",
                host=self.name,
                model="m",
                tier="cloud" if self.name == "cloud" else "local",
                latency_s=time.perf_counter() - started,
            )
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    async def status(self) -> HostStatus:
        return HostStatus(host=self.name, reachable=True)

    async def aclose(self) -> None:
        self.closed = True


def make_fleet(names: str = "abc", *, max_concurrency: int = 8, **kwargs: object) -> Fleet:
    hosts = [
        Host(
            name=name,
            url="http://127.0.0.1:9",
            model="m",
            max_concurrency=max_concurrency,
            cost=HostCost(hardware_usd_per_hour=3.6),  # $0.001 per second
        )
        for name in names
    ]
    return Fleet(hosts=hosts, **kwargs)  # type: ignore[arg-type]


def dispatcher(fleet: Fleet, providers: dict[str, StandInProvider], **kwargs: object) -> Dispatcher:
    return Dispatcher(fleet, providers, **kwargs)  # type: ignore[arg-type]


def in_flight(d: Dispatcher) -> int:
    """Requests the dispatcher counts in flight, over the whole fleet."""
    return sum(snap.in_flight for snap in d.health().values())


async def test_race_fastest_host_wins_and_losers_are_cancelled() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(hang=True)),
        "b": StandInProvider("b", default=Step(0.02)),
        "c": StandInProvider("c", default=Step(hang=True)),
    }
    async with dispatcher(make_fleet(strategy="race"), providers) as d:
        started = time.perf_counter()
        gen = await d.generate(REQUEST)
        elapsed = time.perf_counter() - started
    assert gen.host == "b" and gen.text == "answer from b" and gen.tier == "local"
    outcomes = {a.host: (a.outcome, a.cancelled) for a in gen.attempts}
    assert outcomes == {"a": ("cancelled", True), "b": ("ok", False), "c": ("cancelled", True)}
    assert providers["a"].cancelled == providers["c"].cancelled == 1
    assert all(p.closed for p in providers.values())
    # Every contacted host is charged for its busy time at $0.001/s: each was busy at least until the winner answered,
    # and the losers (which never answer) were stopped within the call.
    winner = next(a for a in gen.attempts if a.host == "b")
    assert gen.cost_usd is not None
    assert 3 * 0.001 * winner.latency_s * 0.9 <= gen.cost_usd <= 3 * 0.001 * elapsed


async def test_race_error_from_fastest_host_does_not_win() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(0.0, status=500)),
        "b": StandInProvider("b", default=Step(0.05)),
        "c": StandInProvider("c", default=Step(0.3)),
    }
    d = dispatcher(make_fleet(strategy="race"), providers)
    gen = await d.generate(REQUEST)
    assert gen.host == "b"
    a = next(x for x in gen.attempts if x.host == "a")
    assert (a.outcome, a.status, a.cancelled) == ("error", 500, False)
    assert d.health()["a"].consecutive_failures == 1


async def test_all_hosts_fail_without_fallback_names_every_host() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(0.0, status=500)),
        "b": StandInProvider("b", default=Step(0.0, status=404)),
        "c": StandInProvider("c", default=Step(0.01, status=503)),
    }
    d = dispatcher(make_fleet(strategy="race", fallback="none"), providers)
    with pytest.raises(FleetUnavailable) as info:
        await d.generate(REQUEST)
    assert set(info.value.reasons) == {"a", "b", "c"}
    assert info.value.reasons["b"].startswith("HTTP 404")
    assert "a:" in str(info.value) and "c:" in str(info.value)


async def test_all_hosts_fail_with_cloud_fallback_records_why_and_spends_budget() -> None:
    providers = {name: StandInProvider(name, default=Step(0.0, status=500)) for name in "ab"}
    cloud = StandInProvider("cloud", default=Step(0.01))
    fleet = make_fleet("ab", strategy="race", fallback="cloud", cloud_budget_usd=0.025)
    d = dispatcher(fleet, providers, cloud=cloud, cloud_cost=lambda gen: 0.01)
    gen = await d.generate(REQUEST)
    assert gen.tier == "cloud" and gen.host == "cloud" and gen.text == "answer from cloud"
    last = gen.attempts[-1]
    assert last.host == "cloud" and last.outcome == "ok"
    assert last.error is not None and last.error.startswith("fallback: every local host failed")
    assert [a.outcome for a in gen.attempts[:-1]] == ["error", "error"]
    assert gen.cost_usd == pytest.approx(0.01, abs=1e-4)
    await d.generate(REQUEST)
    await d.generate(REQUEST)  # 0.03 spent now: over the 0.025 cap
    with pytest.raises(FleetUnavailable) as info:
        await d.generate(REQUEST)
    assert info.value.reasons["cloud"] == "cloud budget exhausted"
    assert len(cloud.calls) == 3
    assert d.cloud_budget.spent_usd == pytest.approx(0.03)


async def test_cloud_answer_without_a_price_has_unknown_cost() -> None:
    d = dispatcher(
        make_fleet("a", fallback="cloud"),
        {"a": StandInProvider("a", default=Step(0.0, status=500))},
        cloud=StandInProvider("cloud"),
    )
    gen = await d.generate(REQUEST)
    assert gen.tier == "cloud" and gen.cost_usd is None
    assert d.cloud_budget.unpriced_calls == 1


async def test_open_breaker_skips_host_and_half_open_probe_closes_it() -> None:
    now = [0.0]
    providers = {
        "a": StandInProvider("a", steps=[Step(0.0, status=500)] * 2, default=Step(0.01)),
        "b": StandInProvider("b", default=Step(0.05)),
    }
    fleet = make_fleet("ab", strategy="race", breaker=BreakerPolicy(failures=2, cooldown_s=30))
    d = dispatcher(fleet, providers, clock=lambda: now[0])
    for _ in range(2):
        assert (await d.generate(REQUEST)).host == "b"
    assert d.health()["a"].state == "open"
    gen = await d.generate(REQUEST)
    assert gen.host == "b"
    skipped = gen.attempts[0]
    assert (skipped.host, skipped.outcome, skipped.error) == ("a", "skipped", "breaker open")
    assert len(providers["a"].calls) == 2  # not contacted while open

    now[0] += 30.0
    assert d.health()["a"].state == "half_open"
    gen = await d.generate(REQUEST)  # the probe: a answers (fast) and closes the breaker
    assert gen.host == "a"
    assert d.health()["a"].state == "closed"


async def test_hedge_sends_second_request_only_after_the_delay() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(hang=True)),  # a straggler: only the hedge can answer
        "b": StandInProvider("b", default=Step(0.05)),
    }
    fleet = make_fleet("ab", strategy="hedge", hedge=HedgePolicy(delay_s=0.2))
    d = dispatcher(fleet, providers)
    started = time.perf_counter()
    gen = await d.generate(REQUEST)
    assert gen.host == "b"
    assert providers["b"].calls[0] - started >= 0.2  # the hedge waited for the delay
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "cancelled"), ("b", "ok")]
    assert d.hedge_budget.hedges == 1

    # A primary that answers within the delay is never hedged.
    for provider in providers.values():
        provider.default = Step(0.01)
        provider.calls.clear()
    for _ in range(3):
        gen = await d.generate(REQUEST)
        assert len(gen.attempts) == 1 and gen.attempts[0].outcome == "ok"
    assert len(providers["a"].calls) + len(providers["b"].calls) == 3
    assert d.hedge_budget.hedges == 1


async def test_hedge_fails_over_at_once_and_charges_the_bucket() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(0.0, status=500)),
        "b": StandInProvider("b", default=Step(0.05)),
    }
    fleet = make_fleet("ab", strategy="hedge", hedge=HedgePolicy(delay_s=GENEROUS_S))
    d = dispatcher(fleet, providers)
    gen = await d.generate(REQUEST)
    assert gen.host == "b"  # a failover, not a hedge after the delay: see the bucket's counts
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "error"), ("b", "ok")]
    assert d.hedge_budget.failovers == 1 and d.hedge_budget.hedges == 0


async def test_hedge_denied_when_budget_is_spent() -> None:
    answer = asyncio.Event()
    providers = {
        "a": StandInProvider("a", default=Step(gate=answer)),
        "b": StandInProvider("b", default=Step(gate=answer)),
    }
    fleet = make_fleet("ab", strategy="hedge", hedge=HedgePolicy(delay_s=0.05, budget=0.0))
    d = dispatcher(fleet, providers)
    started = time.perf_counter()
    call = asyncio.create_task(d.generate(REQUEST))
    assert await until(lambda: d.hedge_budget.denied >= 3)
    third_ask = time.perf_counter() - started
    answer.set()
    gen = await call
    assert len(gen.attempts) == 1 and gen.attempts[0].outcome == "ok"
    assert d.hedge_budget.hedges == 0 and providers["b"].calls == []
    assert third_ask >= 0.2 - 0.02  # asked at 0.05 s, again at 0.1 s and 0.2 s (twice the wait each time)


async def test_a_refused_hedge_is_asked_again_when_the_call_has_waited_twice_as_long() -> None:
    """A call still waiting long after its hedge delay is likely a straggler: a token that arrives later (other calls
    deposit them) goes to it then, rather than the call ending on its slow host."""
    providers = {"a": StandInProvider("a", default=Step(hang=True)), "b": StandInProvider("b", default=Step(0.05))}
    fleet = make_fleet("ab", strategy="hedge", hedge=HedgePolicy(delay_s=0.1))
    d = dispatcher(fleet, providers)
    d.hedge_budget.tokens = 0.0

    async def refill() -> None:
        assert await until(lambda: d.hedge_budget.denied >= 1)  # after the first refusal
        d.hedge_budget.tokens = 1.0

    gen, _ = await asyncio.gather(d.generate(REQUEST), refill())
    assert gen.host == "b"  # a never answers: the hedge went out after all
    assert d.hedge_budget.denied >= 1 and d.hedge_budget.hedges == 1
    # not before the call had waited twice its delay (a small allowance for clock resolution)
    assert providers["b"].calls[0] - providers["a"].calls[0] >= 2 * 0.1 - 0.02


async def _straggler_call(strategy: str, *, busy: str) -> tuple[Generation, Dispatcher]:
    """One call whose first host straggles, with the hedge bucket empty and host c queueing (3 requests in flight on
    2 slots), so ``auto`` hedges rather than races. The straggler answers only once the call has been refused a hedge:
    the call ends on b only if a hedge went out without a token. ``busy`` names the hosts held full meanwhile: other
    calls' requests, as the dispatcher's own in-flight counts see them."""
    straggler = asyncio.Event()
    providers = {
        "a": StandInProvider("a", default=Step(gate=straggler)),
        "b": StandInProvider("b", default=Step(0.05)),
        "c": StandInProvider("c", default=Step(0.05)),
    }
    d = dispatcher(make_fleet("abc", max_concurrency=2, hedge=HedgePolicy(delay_s=0.1)), providers)
    d.hedge_budget.tokens = 0.0
    for name in busy:
        d._state.health[name].in_flight = 3 if name == "c" else 2
        for _ in range(2):
            await d._state.slots.take([name])  # their slots are held
    call = asyncio.create_task(d.generate(REQUEST, strategy=strategy))  # type: ignore[arg-type]

    async def answer_once_refused() -> None:
        assert await until(lambda: d.hedge_budget.denied >= 1 or call.done())
        straggler.set()

    gen, _ = await asyncio.gather(call, answer_once_refused())
    return gen, d


async def test_auto_hedges_onto_an_idle_slot_without_spending_the_budget() -> None:
    """auto's hedge is load-aware: b has its slots free, so the hedge goes there at 0.1 s though the bucket is empty,
    and the straggler on a is cancelled. hedge, with the same empty bucket, is refused and waits out the straggler."""
    gen, d = await _straggler_call("auto", busy="c")
    assert gen.host == "b"
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "cancelled"), ("b", "ok")]
    assert (d.hedge_budget.free_hedges, d.hedge_budget.hedges, d.hedge_budget.denied) == (1, 0, 0)

    gen, d = await _straggler_call("hedge", busy="c")
    assert gen.host == "a" and [a.host for a in gen.attempts] == ["a"]
    assert d.hedge_budget.free_hedges == 0 and d.hedge_budget.denied >= 1


async def test_auto_pays_for_a_hedge_into_a_busy_host() -> None:
    """With b and c both full, the hedge would wait in a queue: that one needs a token, and the bucket is empty."""
    gen, d = await _straggler_call("auto", busy="bc")
    assert gen.host == "a" and [a.host for a in gen.attempts] == ["a"]
    assert d.hedge_budget.free_hedges == 0 and d.hedge_budget.denied >= 1


async def _occupied(d: Dispatcher) -> asyncio.Task[Generation]:
    """A call that holds a slot (least_loaded puts successive calls on successive idle hosts)."""
    before = in_flight(d)
    call = asyncio.create_task(d.generate(REQUEST, strategy="least_loaded"))
    assert await until(lambda: in_flight(d) > before)
    return call


async def _first_freed(strategy: str) -> tuple[Generation, dict[str, StandInProvider], Dispatcher]:
    """A call made while a and b are both busy; b frees first. The occupier of a answers only after the call has been
    refused a hedge (hedge) or has answered (auto)."""
    frees = {name: asyncio.Event() for name in "ab"}
    providers = {name: StandInProvider(name, [Step(gate=frees[name])], Step(0.0)) for name in "ab"}
    d = dispatcher(make_fleet("ab", max_concurrency=1, hedge=HedgePolicy(delay_s=0.1)), providers)
    d.hedge_budget.tokens = 0.0
    busy = [await _occupied(d), await _occupied(d)]
    call = asyncio.create_task(d.generate(REQUEST, strategy=strategy))  # type: ignore[arg-type]
    assert await until(lambda: in_flight(d) == 3)  # it waits for a slot
    frees["b"].set()
    assert await until(lambda: call.done() or d.hedge_budget.denied >= 1)
    frees["a"].set()
    gen = await call
    await asyncio.gather(*busy)
    return gen, providers, d


async def test_auto_takes_the_first_slot_freed_on_any_host() -> None:
    """Late binding: with a and b both busy and b freeing first, auto's call goes to b as soon as it frees, without a
    hedge or a token, while a is still busy. hedge's call, bound to a with an empty bucket, is refused a hedge onto b
    and waits for a."""
    for strategy, host in (("auto", "b"), ("hedge", "a")):
        gen, providers, d = await _first_freed(strategy)
        assert gen.host == host, strategy
        assert [(a.host, a.outcome) for a in gen.attempts] == [(host, "ok")]
        assert (len(providers["a"].calls), len(providers["b"].calls)) == ((1, 2) if host == "b" else (2, 1))
        assert d.hedge_budget.hedges == 0
        assert (d.hedge_budget.denied == 0) == (strategy == "auto")
        assert all(h.in_flight == 0 for h in d._state.health.values())


async def test_auto_times_its_hedge_from_the_slot_not_the_queue() -> None:
    """auto's hedge delay (0.1 s) is a time at the host: a call that queues for its slot is not hedged meanwhile (both
    hosts full; a hedge would have been refused a token, the bucket being empty), but 0.1 s after it reached a, onto
    b, free by then, without a token."""
    frees = {name: asyncio.Event() for name in "ab"}
    providers = {
        "a": StandInProvider("a", [Step(gate=frees["a"]), Step(hang=True)], Step(0.0)),
        "b": StandInProvider("b", [Step(gate=frees["b"])], Step(0.0)),
    }
    d = dispatcher(make_fleet("ab", max_concurrency=1, hedge=HedgePolicy(delay_s=0.1)), providers)
    d.hedge_budget.tokens = 0.0
    busy = [await _occupied(d), await _occupied(d)]
    call = asyncio.create_task(d.generate(REQUEST, strategy="auto"))
    assert await until(lambda: in_flight(d) == 3)
    await asyncio.sleep(0.3)  # three hedge delays in the queue (a slower machine only makes this check weaker)
    assert d.hedge_budget.denied == 0 and len(providers["b"].calls) == 1  # no hedge asked for while queued
    frees["a"].set()  # a frees first: the call takes its slot and straggles there
    assert await until(lambda: len(providers["a"].calls) == 2)
    frees["b"].set()  # then b frees, so the hedge finds a slot there
    gen = await call
    await asyncio.gather(*busy)
    assert gen.host == "b"
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "cancelled"), ("b", "ok")]
    reached_a, hedged_to_b = providers["a"].calls[1], providers["b"].calls[1]
    assert hedged_to_b - reached_a >= 0.1 - 0.01  # the delay ran from the slot (an allowance for clock resolution)
    assert (d.hedge_budget.hedges, d.hedge_budget.free_hedges) == (0, 1)


async def test_auto_does_not_bind_to_a_host_whose_breaker_opened_while_it_waited() -> None:
    providers = {name: StandInProvider(name, default=Step(0.01)) for name in "ab"}
    d = dispatcher(make_fleet("ab", max_concurrency=1, breaker=BreakerPolicy(failures=1)), providers)
    pool, health = d._state.slots, d._state.health
    for name in "ab":  # both hosts full: other calls' requests, as the pool and the in-flight counts see them
        await pool.take([name])
        health[name].in_flight = 1
    call = asyncio.create_task(d.generate(REQUEST, strategy="auto"))
    assert await until(lambda: in_flight(d) == 3)  # it waits for a slot
    health["b"].record_failure("normal")
    pool.give_back("b")  # b frees first, but its breaker is open now
    assert await until(lambda: pool.free("b") == 1)  # handed back
    assert not call.done() and providers["b"].calls == []
    pool.give_back("a")
    gen = await call
    assert gen.host == "a" and providers["b"].calls == []


async def test_overall_timeout_holds_when_every_host_hangs() -> None:
    providers = {name: StandInProvider(name, default=Step(hang=True)) for name in "ab"}
    for strategy in ("race", "hedge", "single"):
        fleet = make_fleet("ab", timeout_s=0.3, hedge=HedgePolicy(delay_s=0.1))
        d = dispatcher(fleet, providers)
        started = time.perf_counter()
        with pytest.raises(FleetUnavailable) as info:
            async with asyncio.timeout(GENEROUS_S):  # the call ends by its own timeout, not this one
                await d.generate(REQUEST, strategy=strategy)  # type: ignore[arg-type]
        assert time.perf_counter() - started >= 0.3, strategy
        reasons = info.value.reasons
        assert reasons["a"] == "no answer within 0.3s"
        if strategy == "single":
            assert reasons["b"] == "not tried (strategy single)"
        else:
            assert reasons["b"] == "no answer within 0.3s"
    assert sum(p.cancelled for p in providers.values()) == 5  # race 2, hedge 2, single 1: nothing left running


async def test_single_uses_first_healthy_host_by_order_and_never_retries() -> None:
    providers = {
        "a": StandInProvider("a", default=Step(0.0, status=500)),
        "b": StandInProvider("b", default=Step(0.0)),
    }
    fleet = make_fleet("ab", strategy="single", breaker=BreakerPolicy(failures=1, cooldown_s=60))
    d = dispatcher(fleet, providers)
    with pytest.raises(FleetUnavailable):
        await d.generate(REQUEST)
    gen = await d.generate(REQUEST)  # a's breaker is open now
    assert gen.host == "b"
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "skipped"), ("b", "ok")]


async def test_per_host_semaphore_limits_concurrency() -> None:
    providers = {"a": StandInProvider("a", default=Step(0.05))}
    d = dispatcher(make_fleet("a", strategy="single", max_concurrency=2), providers)
    results = await asyncio.gather(*(d.generate(REQUEST) for _ in range(6)))
    assert len(results) == 6
    assert providers["a"].max_active == 2
    # Waiting for the semaphore counts in the attempt's latency: the last pair waited for two others (3 x 0.05 s; the
    # event loop may wake a sleep up to its clock resolution early, hence the small allowance).
    assert max(r.attempts[0].latency_s for r in results) >= 0.14


async def test_unknown_strategy_and_missing_provider_are_input_errors() -> None:
    providers = {"a": StandInProvider("a")}
    d = dispatcher(make_fleet("a"), providers)
    with pytest.raises(InputError, match="unknown strategy"):
        await d.generate(REQUEST, strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no provider for host"):
        dispatcher(make_fleet("ab"), providers)


async def test_cancelling_the_call_cancels_its_requests() -> None:
    providers = {name: StandInProvider(name, default=Step(hang=True)) for name in "ab"}
    d = dispatcher(make_fleet("ab", strategy="race"), providers)
    task = asyncio.create_task(d.generate(REQUEST))
    assert await until(lambda: all(p.active == 1 for p in providers.values()))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sum(p.cancelled for p in providers.values()) == 2
    assert all(p.active == 0 for p in providers.values())
