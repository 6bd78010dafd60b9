"""AnthropicProvider through the official SDK against FakeAnthropic on loopback."""

from __future__ import annotations

import socket

import pytest

from harness.errors import InputError, ProviderError
from harness.fakes import FakeAnthropic, Reply
from harness.providers.anthropic_cloud import AnthropicProvider
from harness.providers.types import GenerationRequest

MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def _provider(fake: FakeAnthropic, **kwargs: object) -> AnthropicProvider:
    return AnthropicProvider(MODEL, api_key="test-key", base_url=fake.url, **kwargs)


async def test_answer_and_usage_with_cache_tokens(fake):
    fake.script = Reply.ok(
        "Supplement the drip edge.",
        usage={
            "input_tokens": 1200,
            "output_tokens": 5,
            "cache_creation_input_tokens": 40,
            "cache_read_input_tokens": 900,
        },
    )
    p = _provider(fake)
    try:
        gen = await p.generate(GenerationRequest(prompt="What is missing?", system="You review estimates."))
    finally:
        await p.aclose()
    assert gen.text == "Supplement the drip edge."
    assert (gen.host, gen.model, gen.tier) == ("cloud", MODEL, "cloud")
    assert gen.usage.input_tokens == 1200 and gen.usage.output_tokens == 5
    assert gen.usage.cache_creation_input_tokens == 40
    assert gen.usage.cache_read_input_tokens == 900
    assert gen.finish_reason == "end_turn"
    assert gen.cost_usd is None

    (sent,) = fake.requests_to("/v1/messages")
    assert sent.body == {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "What is missing?"}],
        "system": "You review estimates.",
    }
    assert sent.headers["authorization"] == "Bearer test-key" or sent.headers.get("x-api-key") == "test-key"


async def test_sampling_parameters_only_when_configured(fake):
    p = _provider(fake, top_p=0.9, top_k=40)
    try:
        await p.generate(GenerationRequest(prompt="q"))
        await p.generate(GenerationRequest(prompt="q", temperature=0.0, stop=("###",), seed=5, num_ctx=2048))
    finally:
        await p.aclose()
    first, second = (r.body for r in fake.requests_to("/v1/messages"))
    assert "temperature" not in first and "stop_sequences" not in first and "system" not in first
    assert (first["top_p"], first["top_k"]) == (0.9, 40)
    assert second["temperature"] == 0.0 and second["stop_sequences"] == ["###"]
    assert "seed" not in second and "num_ctx" not in second


async def test_stop_sequence_and_max_tokens_reasons(fake):
    p = _provider(fake)
    try:
        fake.script = Reply.ok("one two ### three")
        assert (await p.generate(GenerationRequest(prompt="q", stop=("###",)))).finish_reason == "stop_sequence"
        fake.script = Reply.ok("one two three")
        assert (await p.generate(GenerationRequest(prompt="q", max_tokens=2))).finish_reason == "max_tokens"
    finally:
        await p.aclose()


async def test_rate_limit_is_retried_after_retry_after(fake):
    fake.script = [Reply.rate_limited(retry_after=0.3), Reply.ok("second time lucky")]
    p = _provider(fake, max_retries=2)
    try:
        gen = await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert gen.text == "second time lucky"
    assert fake.generations == 2
    assert gen.latency_s >= 0.3  # it waited what retry-after asked
    # our loop retries, not the SDK's: every request is the SDK's first try
    assert {r.headers["x-stainless-retry-count"] for r in fake.requests_to("/v1/messages")} == {"0"}


async def test_overloaded_529_is_retried(fake):
    fake.script = [Reply.overloaded(), Reply.ok("ok")]
    p = _provider(fake, max_retries=1)
    try:
        gen = await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert gen.text == "ok" and fake.generations == 2


async def test_retries_are_bounded(fake):
    fake.script = Reply.rate_limited(retry_after=0)
    p = _provider(fake, max_retries=2)
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert fake.generations == 3
    assert info.value.status == 429 and info.value.retryable is True and info.value.host == "cloud"
    assert isinstance(info.value.__cause__, Exception)


async def test_spend_limit_429_is_never_retried(fake):
    fake.script = Reply.spend_limit()
    p = _provider(fake, max_retries=3)
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert fake.generations == 1
    assert info.value.status == 429 and info.value.retryable is False
    assert "spend limit" in info.value.message and "spend limit" in info.value.hint


async def test_retry_after_longer_than_the_cap_fails_at_once(fake):
    fake.script = Reply.rate_limited(retry_after=3600)
    p = _provider(fake, max_retries=3, max_retry_wait_s=5)
    try:
        with pytest.raises(ProviderError, match="3600") as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert fake.generations == 1 and info.value.retryable is True


@pytest.mark.parametrize(("status", "hint"), [(400, ""), (401, "ANTHROPIC_API_KEY"), (404, MODEL)])
async def test_client_errors_are_not_retried(fake, status, hint):
    fake.script = Reply.error(status, "nope")
    p = _provider(fake, max_retries=3)
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert fake.generations == 1
    assert info.value.status == status and info.value.retryable is False
    assert hint in info.value.hint


async def test_credit_balance_400_gets_a_billing_hint(fake):
    fake.script = Reply.error(400, "Your credit balance is too low to access the Anthropic API.")
    p = _provider(fake)
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert info.value.retryable is False and "credits" in info.value.hint


async def test_connection_refused_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = AnthropicProvider(MODEL, api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
        status = await p.status()
    finally:
        await p.aclose()
    assert info.value.status is None and info.value.retryable is True
    assert status.reachable is False


def test_missing_api_key_is_an_input_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(InputError) as info:
        AnthropicProvider(MODEL)
    assert "ANTHROPIC_API_KEY" in info.value.hint


async def test_api_key_from_environment(monkeypatch, fake):
    """With no key passed, the provider sends ANTHROPIC_API_KEY's value, as the server sees it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    fake.script = Reply.ok("ok")
    provider = AnthropicProvider(MODEL, base_url=fake.url)
    try:
        await provider.generate(GenerationRequest(prompt="q"))
    finally:
        await provider.aclose()
    sent = [r.headers for r in fake.requests if r.path == "/v1/messages"]
    assert len(sent) == 1
    # The SDK sends the key as x-api-key or, in its 2.x releases, as a bearer token.
    assert sent[0].get("x-api-key") == "from-env" or sent[0].get("authorization") == "Bearer from-env"


async def test_status_checks_the_model():
    with FakeAnthropic(models=(MODEL,)) as fake:
        known = AnthropicProvider(MODEL, api_key="k", base_url=fake.url)
        unknown = AnthropicProvider("claude-nonexistent", api_key="k", base_url=fake.url)
        try:
            assert (await known.status()).model_present is True
            missing = await unknown.status()
        finally:
            await known.aclose()
            await unknown.aclose()
    assert missing.reachable is True and missing.model_present is False
