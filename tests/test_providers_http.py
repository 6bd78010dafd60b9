"""Behaviour shared by the local-host providers: concurrency limits, tokens, cancellation, transport failures."""

from __future__ import annotations

import asyncio
import socket

import pytest

from harness.config.fleet import Host
from harness.errors import InputError, ProviderError
from harness.fakes import FakeOllama, FakeOpenAI, Reply
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


async def _until(predicate, timeout_s: float = 5.0) -> None:
    """Wait for something the server thread does after the client has moved on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("fake_cls", "provider_cls", "kind", "model"), PROVIDERS)
@pytest.mark.parametrize("limit", [2, 9])  # 9 spreads over several pooled clients
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
            await _until(lambda: fake.in_flight == 2)
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
        await _until(lambda: fake.disconnects == 1)
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
            await _until(lambda: fake.in_flight == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await _until(lambda: fake.disconnects == 1)
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
            await _until(lambda: fake.in_flight == 1)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await _until(lambda: fake.disconnects == 1)
        finally:
            await p.aclose()
    assert fake.completed == 0
