"""The dispatcher with the real providers against loopback fake servers: real HTTP, real cancellation."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from _wait import GENEROUS_S, until

from harness.config.fleet import BreakerPolicy, Fleet, HedgePolicy, Host
from harness.dispatch import Dispatcher
from harness.errors import FleetUnavailable
from harness.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, RecordedRequest, Reply
from harness.providers.anthropic_cloud import AnthropicProvider
from harness.providers.types import GenerationRequest

REQUEST = GenerationRequest(prompt="Is drip edge required at eaves under the IRC?", max_tokens=32)
NAMES = ("a", "b", "c")


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeOllama]]:
    """Fresh fake hosts for each test, answering at once.

    Not shared across tests: a request a previous test cancelled can still be in a socket buffer, unread by the
    server, when the next test begins; on a shared server it then arrives in that test and is counted there.
    """
    servers = {name: FakeOllama(name=name).start() for name in NAMES}
    yield servers
    for fake in servers.values():
        fake.stop()


def fleet_of(fakes: dict[str, FakeOllama], **kwargs: object) -> Fleet:
    max_concurrency = int(kwargs.pop("max_concurrency", 4))  # type: ignore[call-overload]
    hosts = [
        Host(name=name, url=fake.url, kind="ollama", model="llama3.2", max_concurrency=max_concurrency)
        for name, fake in fakes.items()
    ]
    return Fleet(hosts=hosts, **kwargs)  # type: ignore[arg-type]


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_race_fastest_healthy_host_wins_and_losers_connections_close(fakes: dict[str, FakeOllama]) -> None:
    fakes["a"].script = Reply.hang()
    fakes["b"].script = Reply.ok("fast b", latency=0.02)
    fakes["c"].script = Reply.hang()
    async with Dispatcher.from_fleet(fleet_of(fakes, strategy="race")) as d:
        gen = await d.generate(REQUEST)
    assert (gen.text, gen.host, gen.tier) == ("fast b", "b", "local")
    assert {a.host: a.outcome for a in gen.attempts} == {"a": "cancelled", "b": "ok", "c": "cancelled"}
    # The losers' servers saw their clients go away: they never answer, so only the cancellation can close them.
    assert await until(lambda: fakes["a"].disconnects == 1 and fakes["c"].disconnects == 1)
    assert fakes["a"].completed == fakes["c"].completed == 0
    assert fakes["b"].completed == 1


async def test_race_http_500_from_fastest_host_does_not_win(fakes: dict[str, FakeOllama]) -> None:
    fakes["a"].script = Reply.error(500, latency=0.0)
    fakes["b"].script = Reply.ok("b answers", latency=0.1)
    fakes["c"].script = Reply.hang()
    async with Dispatcher.from_fleet(fleet_of(fakes, strategy="race")) as d:
        gen = await d.generate(REQUEST)
    assert gen.host == "b" and gen.text == "b answers"
    first = gen.attempts[0]
    assert (first.host, first.outcome, first.status) == ("a", "error", 500)


async def test_all_hosts_down_without_fallback_names_each_host(fakes: dict[str, FakeOllama]) -> None:
    fakes["a"].script = Reply.error(500)
    fakes["b"].script = Reply.error(503)
    hosts = [
        Host(name="a", url=fakes["a"].url, model="llama3.2"),
        Host(name="b", url=fakes["b"].url, model="llama3.2"),
        Host(name="gone", url=closed_port(), model="llama3.2"),
        Host(name="nomodel", url=fakes["c"].url, model="mistral"),  # FakeOllama answers 404 for unknown models
    ]
    async with Dispatcher.from_fleet(Fleet(hosts=hosts, strategy="race", fallback="none")) as d:
        with pytest.raises(FleetUnavailable) as info:
            await d.generate(REQUEST)
    reasons = info.value.reasons
    assert list(reasons) == ["a", "b", "gone", "nomodel"]
    assert reasons["a"].startswith("HTTP 500") and reasons["b"].startswith("HTTP 503")
    assert "cannot connect" in reasons["gone"]
    assert reasons["nomodel"].startswith("HTTP 404")
    for name in ("a:", "b:", "gone:", "nomodel:"):
        assert name in str(info.value)


async def test_all_hosts_down_with_cloud_fallback_reaches_the_cloud(fakes: dict[str, FakeOllama]) -> None:
    for fake in fakes.values():
        fake.script = Reply.error(500)
    with FakeAnthropic(script=Reply.ok("From the cloud: yes, R905.2.8.5.")) as cloud_fake:
        cloud = AnthropicProvider("claude-sonnet-4-6", api_key="sk-ant-test", base_url=cloud_fake.url, max_retries=0)
        fleet = fleet_of(fakes, strategy="hedge", fallback="cloud", cloud_budget_usd=0.015)
        async with Dispatcher.from_fleet(fleet, cloud=cloud, cloud_cost=lambda gen: 0.01) as d:
            gen = await d.generate(REQUEST)
            assert (gen.text, gen.tier, gen.host) == ("From the cloud: yes, R905.2.8.5.", "cloud", "cloud")
            assert [a.outcome for a in gen.attempts] == ["error", "error", "error", "ok"]
            cloud_attempt = gen.attempts[-1]
            assert cloud_attempt.host == "cloud"
            assert cloud_attempt.error is not None and "every local host failed" in cloud_attempt.error
            assert gen.usage.input_tokens is not None  # the real SDK parsed the fake's usage
            assert len(cloud_fake.requests_to("/v1/messages")) == 1

            await d.generate(REQUEST)  # 0.02 spent: the 0.015 cap is reached
            with pytest.raises(FleetUnavailable) as info:
                await d.generate(REQUEST)
            assert info.value.reasons["cloud"] == "cloud budget exhausted"
            assert len(cloud_fake.requests_to("/v1/messages")) == 2


async def test_open_breaker_skips_host_then_half_open_probe_closes_it(fakes: dict[str, FakeOllama]) -> None:
    now = [0.0]
    fakes["a"].script = [Reply.error(500), Reply.error(500)]  # then the default: answer at once
    fakes["b"].script = Reply.ok("b", latency=0.2)
    fakes["c"].script = Reply.ok("c", latency=0.2)
    fleet = fleet_of(fakes, strategy="race", breaker=BreakerPolicy(failures=2, cooldown_s=10))
    async with Dispatcher.from_fleet(fleet, clock=lambda: now[0]) as d:
        await d.generate(REQUEST)
        await d.generate(REQUEST)
        assert d.health()["a"].state == "open"
        gen = await d.generate(REQUEST)
        skipped = gen.attempts[0]
        assert (skipped.host, skipped.outcome, skipped.error) == ("a", "skipped", "breaker open")
        assert fakes["a"].generations == 2  # nothing sent while open

        now[0] += 10
        assert d.health()["a"].state == "half_open"
        fakes["b"].script = fakes["c"].script = Reply.hang()  # so the probe's answer is the one that wins
        gen = await d.generate(REQUEST)  # the probe
        assert gen.host == "a"
        assert d.health()["a"].state == "closed"
        assert fakes["a"].generations == 3


async def test_hedge_sends_second_request_only_after_the_delay(fakes: dict[str, FakeOllama]) -> None:
    arrivals: dict[str, list[float]] = {name: [] for name in NAMES}

    def timed(name: str, reply: Reply) -> Callable[[RecordedRequest], Reply]:
        def script(request: RecordedRequest) -> Reply:
            arrivals[name].append(time.perf_counter())
            return reply

        return script

    fakes["a"].script = timed("a", Reply.hang())  # a straggler: only the hedge can answer
    fakes["b"].script = timed("b", Reply.ok("b", latency=0.05))
    fakes["c"].script = timed("c", Reply.ok("c", latency=0.05))
    fleet = fleet_of(fakes, strategy="hedge", hedge=HedgePolicy(delay_s=0.3))
    async with Dispatcher.from_fleet(fleet) as d:
        gen = await d.generate(REQUEST)
    assert gen.host == "b"
    assert len(arrivals["a"]) == 1 and len(arrivals["b"]) == 1 and arrivals["c"] == []
    assert arrivals["b"][0] - arrivals["a"][0] >= 0.3 - 0.02  # the hedge waited (small allowance for clocks)
    assert [(a.host, a.outcome) for a in gen.attempts] == [("a", "cancelled"), ("b", "ok")]
    assert await until(lambda: fakes["a"].disconnects == 1)


async def test_adaptive_hedge_waits_for_the_hosts_recent_p95(fakes: dict[str, FakeOllama]) -> None:
    fleet = fleet_of({"a": fakes["a"], "b": fakes["b"]}, strategy="hedge", hedge=HedgePolicy(min_delay_s=0.0))
    fakes["a"].script = Reply.ok("a", latency=0.1)
    fakes["b"].script = Reply.ok("b", latency=0.1)
    async with Dispatcher.from_fleet(fleet) as d:
        for _ in range(22):  # learn the fleet's latency (20 samples are enough): ~0.1 s
            await d.generate(REQUEST)
        p95 = max(d.health()[name].p95_s or 0.0 for name in ("a", "b"))
        assert p95 >= 0.1  # each answer took the scripted 0.1 s at least
        assert sum(d.health()[name].samples for name in ("a", "b")) == 22  # enough to hedge by them
        arrivals: list[float] = []

        def straggle(request: RecordedRequest) -> Reply:
            arrivals.append(time.perf_counter())
            return Reply.hang()  # only a hedge can follow the first request

        fakes["a"].script = fakes["b"].script = straggle
        task = asyncio.create_task(d.generate(REQUEST))
        assert await until(lambda: len(arrivals) == 2)
        # the hedge waited for the learnt latency (>= 0.1 s; an allowance for clock resolution), not the 0.05 s minimum
        assert arrivals[1] - arrivals[0] >= 0.1 - 0.02
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_overall_timeout_holds_when_a_host_hangs(fakes: dict[str, FakeOllama]) -> None:
    for fake in fakes.values():
        fake.script = Reply.hang()
    fleet = fleet_of(fakes, timeout_s=0.5, hedge=HedgePolicy(delay_s=0.1))
    async with Dispatcher.from_fleet(fleet) as d:
        for strategy in ("race", "hedge", "single"):
            started = time.perf_counter()
            with pytest.raises(FleetUnavailable) as info:
                async with asyncio.timeout(GENEROUS_S):  # the call ends by its own timeout, not this one
                    await d.generate(REQUEST, strategy=strategy)  # type: ignore[arg-type]
            assert time.perf_counter() - started >= 0.5, strategy
            assert info.value.reasons["a"] == "no answer within 0.5s"
    # race 3 + hedge 2 + single 1 requests; every one that reached a server was abandoned and its connection closed
    # (counted live: the server thread may see a request a moment after the client gave up on it)
    def all_abandoned() -> bool:
        generations = sum(f.generations for f in fakes.values())
        return generations >= 3 and sum(f.disconnects for f in fakes.values()) == generations

    assert await until(all_abandoned), [(f.generations, f.disconnects) for f in fakes.values()]
    assert sum(f.generations for f in fakes.values()) <= 6
    assert sum(f.completed for f in fakes.values()) == 0


async def test_single_strategy_uses_one_host_and_the_timeout(fakes: dict[str, FakeOllama]) -> None:
    fakes["a"].script = Reply.hang()
    async with Dispatcher.from_fleet(fleet_of(fakes, strategy="single", timeout_s=0.4)) as d:
        with pytest.raises(FleetUnavailable) as info:
            await d.generate(REQUEST)
    assert info.value.reasons == {
        "a": "no answer within 0.4s",
        "b": "not tried (strategy single)",
        "c": "not tried (strategy single)",
    }
    assert fakes["b"].generations == fakes["c"].generations == 0
    assert await until(lambda: fakes["a"].disconnects == 1)


async def test_per_host_semaphore_limits_concurrency(fakes: dict[str, FakeOllama]) -> None:
    fakes["a"].script = Reply.ok("a", latency=0.1)
    fleet = fleet_of({"a": fakes["a"]}, strategy="single", max_concurrency=2)
    async with Dispatcher.from_fleet(fleet) as d:
        results = await asyncio.gather(*(d.generate(REQUEST) for _ in range(6)))
    assert [r.host for r in results] == ["a"] * 6
    assert fakes["a"].max_in_flight == 2
    assert fakes["a"].completed == 6


async def test_openai_compatible_hosts_race_too() -> None:
    with FakeOpenAI(script=Reply.hang()) as slow, FakeOpenAI(script=Reply.ok("quick")) as quick:
        hosts = [
            Host(name="slow", url=slow.url, kind="openai", model="gemma"),
            Host(name="quick", url=quick.url, kind="openai", model="gemma"),
        ]
        async with Dispatcher.from_fleet(Fleet(hosts=hosts, strategy="race")) as d:
            gen = await d.generate(REQUEST)
        assert (gen.host, gen.text) == ("quick", "quick")
        assert await until(lambda: slow.disconnects == 1)
