"""OllamaProvider against FakeOllama over real HTTP on loopback."""

from __future__ import annotations

import pytest

from harness.config.fleet import Host
from harness.errors import ProviderError
from harness.fakes import FakeOllama, Reply
from harness.providers.base import provider_for
from harness.providers.ollama import OllamaProvider
from harness.providers.types import GenerationRequest


def _host(url: str, **kwargs: object) -> Host:
    fields: dict[str, object] = {"name": "ol1", "url": url, "kind": "ollama", "model": "llama3.2"}
    fields.update(kwargs)
    return Host(**fields)


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


@pytest.fixture
async def provider(fake):
    p = OllamaProvider(_host(fake.url))
    yield p
    await p.aclose()


async def test_registry_builds_the_ollama_provider(fake):
    p = provider_for(_host(fake.url))
    try:
        assert isinstance(p, OllamaProvider)
        assert p.name == "ol1"
    finally:
        await p.aclose()


async def test_chat_answer_usage_and_timing(fake, provider):
    fake.script = Reply.ok(
        "the roof needs ice and water shield",
        usage={
            "prompt_eval_count": 31,
            "eval_count": 7,
            "total_duration": 2_500_000_000,
            "load_duration": 100_000_000,
            "prompt_eval_duration": 400_000_000,
            "eval_duration": 1_900_000_000,
        },
    )
    gen = await provider.generate(GenerationRequest(prompt="What goes under shingles?", system="Answer briefly."))

    assert gen.text == "the roof needs ice and water shield"
    assert (gen.host, gen.model, gen.tier) == ("ol1", "llama3.2", "local")
    assert gen.usage.input_tokens == 31 and gen.usage.output_tokens == 7
    assert gen.timing.total_s == pytest.approx(2.5)
    assert gen.timing.load_s == pytest.approx(0.1)
    assert gen.timing.prompt_eval_s == pytest.approx(0.4)
    assert gen.timing.eval_s == pytest.approx(1.9)
    assert gen.timing.time_to_first_token_s is None
    assert gen.finish_reason == "stop"
    assert gen.attempts == () and gen.cost_usd is None
    assert gen.latency_s > 0

    (sent,) = fake.requests_to("/api/chat")
    assert sent.body["model"] == "llama3.2"
    assert sent.body["stream"] is False
    assert sent.body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What goes under shingles?"},
    ]


async def test_options_are_sent_only_when_given(fake, provider):
    await provider.generate(GenerationRequest(prompt="q", max_tokens=64))
    await provider.generate(
        GenerationRequest(prompt="q", max_tokens=32, temperature=0.0, seed=7, stop=("\n\n", "Q:"), num_ctx=4096)
    )
    bare, full = (r.body for r in fake.requests_to("/api/chat"))
    assert bare["options"] == {"num_predict": 64}
    assert [m["role"] for m in bare["messages"]] == ["user"]
    expected = {"num_predict": 32, "temperature": 0.0, "seed": 7, "num_ctx": 4096, "stop": ["\n\n", "Q:"]}
    assert full["options"] == expected


async def test_completion_endpoint_uses_raw_generate(fake):
    p = OllamaProvider(_host(fake.url, endpoint="completion"))
    try:
        fake.script = Reply.ok("R30 batts")
        gen = await p.generate(GenerationRequest(prompt="Q: attic insulation?\nA:", system="Context: IRC N1102"))
    finally:
        await p.aclose()
    assert gen.text == "R30 batts"
    (sent,) = fake.requests_to("/api/generate")
    assert sent.body["raw"] is True
    assert sent.body["prompt"] == "Context: IRC N1102\n\nQ: attic insulation?\nA:"
    assert "messages" not in sent.body


async def test_missing_counts_and_durations_are_none_not_zero(fake, provider):
    fake.script = Reply.ok("x", usage={"prompt_eval_count": None, "prompt_eval_duration": None, "load_duration": None})
    gen = await provider.generate(GenerationRequest(prompt="q"))
    assert gen.usage.input_tokens is None
    assert gen.usage.output_tokens == 1
    assert gen.timing.prompt_eval_s is None and gen.timing.load_s is None
    assert gen.timing.eval_s is not None


@pytest.mark.parametrize("endpoint", ["chat", "completion"])
async def test_streaming_assembles_text_and_records_first_token(fake, endpoint):
    p = OllamaProvider(_host(fake.url, endpoint=endpoint))
    fake.script = Reply.ok("drip edge at the eaves", chunk_delay=0.01, usage={"eval_count": 5})
    try:
        gen = await p.generate(GenerationRequest(prompt="q", stream=True))
    finally:
        await p.aclose()
    assert gen.text == "drip edge at the eaves"
    assert gen.usage.output_tokens == 5
    assert gen.finish_reason == "stop"
    assert gen.timing.time_to_first_token_s is not None
    assert 0 < gen.timing.time_to_first_token_s <= gen.latency_s
    assert fake.requests[-1].body["stream"] is True


async def test_num_predict_limit_reports_length(fake, provider):
    fake.script = Reply.ok("one two three four five")
    gen = await provider.generate(GenerationRequest(prompt="q", max_tokens=2))
    assert gen.text == "one two"
    assert gen.finish_reason == "length"


async def test_unknown_model_is_404_not_retryable_with_pull_hint(fake):
    p = OllamaProvider(_host(fake.url, model="qwen9"))
    try:
        with pytest.raises(ProviderError) as info:
            await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    err = info.value
    assert err.status == 404 and err.retryable is False and err.host == "ol1"
    assert "qwen9" in err.message and "not found" in err.message
    assert "ollama pull qwen9" in err.hint


async def test_server_busy_503_is_retryable(fake, provider):
    fake.script = Reply.error(503)
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.status == 503 and info.value.retryable is True
    assert "server busy" in info.value.message


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (400, False)])
async def test_error_bodies_are_surfaced(fake, provider, status, retryable):
    fake.script = Reply.error(status, "unexpected EOF while reading options")
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert "unexpected EOF while reading options" in info.value.message


async def test_error_line_mid_stream_under_http_200(fake, provider):
    fake.script = Reply.stream_error("llama runner process has terminated: signal: killed")
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q", stream=True))
    assert "llama runner process has terminated" in info.value.message
    assert info.value.status is None and info.value.retryable is True


async def test_malformed_json(fake, provider):
    fake.script = Reply.malformed()
    with pytest.raises(ProviderError, match="malformed JSON") as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.retryable is True
    assert isinstance(info.value.__cause__, ValueError)


async def test_connection_reset(fake, provider):
    fake.script = Reply.reset()
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.status is None and info.value.retryable is True
    assert fake.resets == 1


async def test_status_reports_version_and_model_presence(fake):
    for model, present in [("llama3.2", True), ("llama3.2:latest", True), ("mistral", False)]:
        p = OllamaProvider(_host(fake.url, model=model))
        try:
            status = await p.status()
        finally:
            await p.aclose()
        assert status.reachable is True
        assert status.version == "0.6.3"
        assert status.models == ("llama3.2:latest",)
        assert status.model_present is present
        assert (status.error is None) is present


async def test_status_of_tagged_models():
    with FakeOllama(models=("qwen2.5:0.5b", "nomic-embed-text:latest")) as fake:
        p = OllamaProvider(_host(fake.url, model="qwen2.5:0.5b"))
        q = OllamaProvider(_host(fake.url, model="qwen2.5"))  # means qwen2.5:latest, which is not pulled
        try:
            assert (await p.status()).model_present is True
            assert (await q.status()).model_present is False
        finally:
            await p.aclose()
            await q.aclose()


async def test_host_stream_streams_and_keeps_the_final_chunks_counts(fake):
    p = OllamaProvider(_host(fake.url, stream=True))
    fake.script = Reply.ok("drip edge at the eaves", chunk_delay=0.01, usage={"eval_count": 5, "prompt_eval_count": 9})
    try:
        gen = await p.generate(GenerationRequest(prompt="q"))  # request.stream is False; the host asks for it
    finally:
        await p.aclose()
    assert fake.requests[-1].body["stream"] is True
    assert gen.text == "drip edge at the eaves"
    assert (gen.usage.input_tokens, gen.usage.output_tokens) == (9, 5)
    assert gen.timing.eval_s is not None
    assert 0 < gen.timing.time_to_first_token_s <= gen.latency_s
