"""Behaviour shared by the local-host providers: concurrency limits, tokens, cancellation, transport failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket

import pytest
from _wait import GENEROUS_S, until

from harness.config.fleet import Host
from harness.errors import InputError, ProviderError
from harness.fakes import FakeOllama, FakeOpenAI, Reply, lognormal
from harness.providers.ollama import OllamaProvider
from harness.providers.openai_compat import OpenAICompatProvider
from harness.providers.types import GenerationRequest

PROVIDERS = [(FakeOllama, OllamaProvider, "ollama", "llama3.2"), (FakeOpenAI, OpenAICompatProvider, "openai", "m")]


def _host(url: str, kind: str, model: str, **kwargs: object) -> Host:
    fields: dict[str, object] = {"name": "h1", "url": url, "kind": kind, "model": model}
    fields.update(kwargs)
    return Host(**fields)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("fake_cls", "provider_cls", "kind", "model"), PROVIDERS)
@pytest.mark.parametrize("limit", [2, 9])
async def test_semaphore_bounds_requests_per_host(fake_cls, provider_cls, kind, model, limit):
    with fake_cls(script=Reply.ok("x", latency=0.05)) as fake:
        p = provider_cls(_host(fake.url, kind, model, max_concurrency=limit))
        try:
            gens = await asyncio.gather(*(p.generate(GenerationRequest(prompt="q")) for _ in range(4 * limit)))
        finally:
            await p.aclose()
    assert len(gens) == 4 * limit
    assert fake.max_in_flight == limit
    assert fake.completed == 4 * limit


async def test_closed_providers_release_their_url_limit():
    with FakeOllama(script=Reply.ok("x", latency=0.05)) as fake:
        first = OllamaProvider(_host(fake.url, "ollama", "llama3.2", max_concurrency=1))
        await first.generate(GenerationRequest(prompt="q"))
        await first.aclose()
        second = OllamaProvider(_host(fake.url, "ollama", "llama3.2", max_concurrency=3))
        try:
            await asyncio.gather(*(second.generate(GenerationRequest(prompt="q")) for _ in range(9)))
        finally:
            await second.aclose()
    assert fake.max_in_flight == 3


async def test_semaphore_is_per_base_url_not_per_host_entry():
    with FakeOllama(script=Reply.ok("x", latency=0.05)) as fake:
        a = OllamaProvider(_host(fake.url, "ollama", "llama3.2", max_concurrency=1))
        b = OllamaProvider(Host(name="h2", url=fake.url, kind="ollama", model="llama3.2", max_concurrency=1))
        try:
            await asyncio.gather(*(p.generate(GenerationRequest(prompt="q")) for p in (a, b, a, b)))
        finally:
            await a.aclose()
            await b.aclose()
    assert fake.max_in_flight == 1


async def test_in_flight_counts_calls_holding_the_semaphore():
    with FakeOllama(script=Reply.ok("x", latency=0.2)) as fake:
        p = OllamaProvider(_host(fake.url, "ollama", "llama3.2", max_concurrency=2))
        try:
            tasks = [asyncio.create_task(p.generate(GenerationRequest(prompt="q"))) for _ in range(3)]
            assert await until(lambda: fake.in_flight == 2)
            assert p.in_flight == 2
            await asyncio.gather(*tasks)
            assert p.in_flight == 0
        finally:
            await p.aclose()


@pytest.mark.parametrize(("fake_cls", "provider_cls", "kind", "model"), PROVIDERS)
async def test_bearer_token_from_environment(monkeypatch, fake_cls, provider_cls, kind, model):
    monkeypatch.setenv("FLEET_TOKEN_TEST", "tok-123")
    with fake_cls() as fake:
        p = provider_cls(_host(fake.url, kind, model, token_env="FLEET_TOKEN_TEST"))
        try:
            await p.generate(GenerationRequest(prompt="q"))
            await p.status()
        finally:
            await p.aclose()
    assert fake.requests
    assert all(r.headers.get("authorization") == "Bearer tok-123" for r in fake.requests)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_token_variable_is_an_input_error(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("FLEET_TOKEN_TEST", raising=False)
    else:
        monkeypatch.setenv("FLEET_TOKEN_TEST", value)
    with pytest.raises(InputError) as info:
        OllamaProvider(_host("http://127.0.0.1:1", "ollama", "llama3.2", token_env="FLEET_TOKEN_TEST"))
    assert "FLEET_TOKEN_TEST" in info.value.message
    assert "export FLEET_TOKEN_TEST" in info.value.hint


@pytest.mark.parametrize(("provider_cls", "kind"), [(OllamaProvider, "ollama"), (OpenAICompatProvider, "openai")])
async def test_connection_refused(provider_cls, kind):
    p = provider_cls(_host(f"http://127.0.0.1:{_free_port()}", kind, "m"))
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
        status = await p.status()
    finally:
        await p.aclose()
    assert info.value.status is None and info.value.retryable is True
    assert "cannot connect" in info.value.message
    assert info.value.hint
    assert status.reachable is False and status.error


@pytest.mark.parametrize(("fake_cls", "provider_cls", "kind", "model"), PROVIDERS)
async def test_read_timeout_is_retryable_and_closes_the_connection(fake_cls, provider_cls, kind, model):
    with fake_cls(script=Reply.hang()) as fake:
        p = provider_cls(_host(fake.url, kind, model), timeout_s=0.2)
        try:
            with pytest.raises(ProviderError) as info:
                await p.generate(GenerationRequest(prompt="q"))
        finally:
            await p.aclose()
        assert await until(lambda: fake.disconnects == 1)
    assert info.value.message.startswith("h1: timed out")
    assert info.value.retryable is True and info.value.status is None


@pytest.mark.parametrize(("fake_cls", "provider_cls", "kind", "model"), PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_cancelling_a_call_closes_its_connection(fake_cls, provider_cls, kind, model, stream):
    """What the race strategy relies on: a cancelled loser's server sees its client go away."""
    with fake_cls(script=Reply.ok("x", latency=30.0)) as fake:
        p = provider_cls(_host(fake.url, kind, model))
        try:
            task = asyncio.create_task(p.generate(GenerationRequest(prompt="q", stream=stream)))
            assert await until(lambda: fake.in_flight == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await until(lambda: fake.disconnects == 1)
            assert fake.completed == 0
            assert p.in_flight == 0
            # the provider is still usable afterwards
            fake.script = Reply.ok("after")
            assert (await p.generate(GenerationRequest(prompt="q"))).text == "after"
        finally:
            await p.aclose()


async def test_cancelling_mid_stream_closes_the_connection():
    with FakeOllama(script=Reply.ok("a b c d e f", chunk_delay=10.0)) as fake:
        p = OllamaProvider(_host(fake.url, "ollama", "llama3.2"))
        try:
            task = asyncio.create_task(p.generate(GenerationRequest(prompt="q", stream=True)))
            assert await until(lambda: fake.in_flight == 1)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await until(lambda: fake.disconnects == 1)
        finally:
            await p.aclose()
    assert fake.completed == 0


# --- cancellation must leave nothing behind in the connection pool ------------------------------------------------


def _pool_entries(provider) -> tuple[int, int]:
    """(connections lent out, idle connections kept) by the provider's aiohttp pool: the independent view."""
    connector = provider._client._transport._session.connector  # noqa: SLF001 -- aiohttp's own bookkeeping
    return len(connector._acquired), sum(len(idle) for idle in connector._conns.values())  # noqa: SLF001


async def _cancel_at(coro, rng: random.Random) -> None:
    """Run ``coro`` and cancel it at a random moment: after 0-80 loop turns (connecting, sending, reading, closing)
    or after 0-15 ms (waiting for the answer, or just as it arrives)."""
    task = asyncio.create_task(coro)
    if rng.random() < 0.5:
        for _ in range(rng.randrange(81)):
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(rng.uniform(0.0, 0.015))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _open_connections_to(port: int) -> int | None:
    """Established TCP connections from this process to ``port`` (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/net/tcp") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return None
    return sum(1 for row in rows if int(row[2].split(":")[1], 16) == port and row[3] == "01")


@pytest.mark.parametrize("stream", [False, True])
async def test_cancelling_at_random_moments_leaves_the_pool_clean(stream):
    """Race losers are cancelled wherever they are: connecting, sending, waiting, reading, or just as the answer
    arrives. Nothing stalls and nothing piles up: no connection stays lent out, the idle ones kept for reuse stay
    within the host's concurrency, and no socket is left open beyond them."""
    limit = 4
    rng = random.Random(7)
    request = GenerationRequest(prompt="q", stream=stream)
    with FakeOpenAI(script=Reply.ok("a b c", latency=lognormal(0.004, 1.0, seed=3))) as fake:
        p = OpenAICompatProvider(_host(fake.url, "openai", "m", max_concurrency=limit))
        try:
            for _ in range(150):  # 1200 cancellations, many of them while a new connection is being set up
                await asyncio.gather(*(_cancel_at(p.generate(request), rng) for _ in range(8)))
            async with asyncio.timeout(GENEROUS_S):  # nothing stalls
                gens = await asyncio.gather(*(p.generate(request) for _ in range(16)))
            lent, idle = _pool_entries(p)
            # closed connections finish closing
            sockets_closed = await until(lambda: (_open_connections_to(fake.port) or 0) <= limit)
            # no slot leaked: requests that never answer still fill every one of the host's slots
            cancelled_at_server = fake.disconnects
            fake.script = Reply.hang()
            fake.reset_counters()
            held = [asyncio.create_task(p.generate(request)) for _ in range(limit + 1)]
            slots_full = await until(lambda: fake.in_flight == limit)
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
        finally:
            await p.aclose()
    assert cancelled_at_server > 50  # the cancellations reached the server too, in every phase
    assert [g.text for g in gens] == ["a b c"] * 16
    assert lent == 0
    assert idle <= limit
    assert sockets_closed, _open_connections_to(fake.port)
    assert slots_full and fake.max_in_flight == limit, fake.max_in_flight


async def test_fake_counts_a_request_abandoned_before_its_body_was_read():
    """A loser cancelled just after sending its headers: the fake counts it (generation, disconnect, unread) and
    does not log starlette's ClientDisconnect as an application error."""
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    with FakeOpenAI() as fake:
        logger.addHandler(handler)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            await writer.drain()
            assert await until(lambda: fake.arrived == 1)  # the server is reading the body
            writer.close()
            await writer.wait_closed()
            assert await until(lambda: fake.unread == 1)
            await asyncio.sleep(0.05)  # time to log an error, if it would (a slower machine only weakens the check)
        finally:
            logger.removeHandler(handler)
    assert (fake.generations, fake.disconnects, fake.completed) == (1, 1, 0)
    assert fake.requests == []  # nothing to record: the body never arrived
    assert errors == []
