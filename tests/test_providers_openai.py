"""OpenAICompatProvider against FakeOpenAI (llama.cpp dialect) over real HTTP on loopback."""

from __future__ import annotations

import pytest

from harness.config.fleet import Host
from harness.errors import ProviderError
from harness.fakes import FakeOpenAI, Reply
from harness.providers.base import provider_for
from harness.providers.openai_compat import OpenAICompatProvider
from harness.providers.types import GenerationRequest

LLAMA_TIMINGS = {"prompt_tokens": 13, "completion_tokens": 4, "prompt_ms": 250.368, "predicted_ms": 165.636}


def _host(url: str, **kwargs: object) -> Host:
    fields: dict[str, object] = {"name": "lc1", "url": url, "kind": "openai", "model": "gemma-3-270m-it-Q4_K_M"}
    fields.update(kwargs)
    return Host(**fields)


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def provider(fake):
    p = OpenAICompatProvider(_host(fake.url))
    yield p
    await p.aclose()


async def test_registry_builds_the_openai_provider(fake):
    p = provider_for(_host(fake.url))
    try:
        assert isinstance(p, OpenAICompatProvider)
    finally:
        await p.aclose()


async def test_chat_answer_usage_and_llama_timings(fake, provider):
    fake.script = Reply.ok("Hi", usage=LLAMA_TIMINGS)
    gen = await provider.generate(GenerationRequest(prompt="hello", system="be brief"))
    assert gen.text == "Hi"
    assert (gen.host, gen.model, gen.tier) == ("lc1", "gemma-3-270m-it-Q4_K_M", "local")
    assert gen.usage.input_tokens == 13 and gen.usage.output_tokens == 4
    assert gen.timing.prompt_eval_s == pytest.approx(0.250368)
    assert gen.timing.eval_s == pytest.approx(0.165636)
    assert gen.timing.total_s == pytest.approx(0.250368 + 0.165636)
    assert gen.timing.load_s is None
    assert gen.finish_reason == "stop"
    (sent,) = fake.requests_to("/v1/chat/completions")
    assert sent.body == {
        "model": "gemma-3-270m-it-Q4_K_M",
        "max_tokens": 256,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
    }


async def test_sampling_fields_sent_only_when_given(fake, provider):
    await provider.generate(GenerationRequest(prompt="q", max_tokens=16, temperature=0.2, seed=3, stop=("\n",)))
    body = fake.requests[-1].body
    assert (body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == (16, 0.2, 3, ["\n"])
    assert "stream" not in body


async def test_without_timings_the_timing_is_unmeasured():
    with FakeOpenAI(timings=False) as fake:
        p = OpenAICompatProvider(_host(fake.url))
        try:
            gen = await p.generate(GenerationRequest(prompt="two words"))
        finally:
            await p.aclose()
    assert gen.usage.input_tokens == 2
    assert gen.timing.total_s is None and gen.timing.prompt_eval_s is None and gen.timing.eval_s is None


async def test_completion_endpoint_with_prompt_template_and_stop(fake):
    p = OpenAICompatProvider(_host(fake.url, endpoint="completion"))
    fake.script = Reply.ok("Ice barrier required.\nQ: next question")
    try:
        gen = await p.generate(
            GenerationRequest(prompt="Q: eaves in cold climates?\nA:", system="Use the context.", stop=("\nQ:",))
        )
    finally:
        await p.aclose()
    assert gen.text == "Ice barrier required."
    (sent,) = fake.requests_to("/v1/completions")
    assert sent.body["prompt"] == "Use the context.\n\nQ: eaves in cold climates?\nA:"
    assert sent.body["stop"] == ["\nQ:"]
    assert "messages" not in sent.body


async def test_url_with_v1_suffix(fake):
    p = OpenAICompatProvider(_host(fake.url + "/v1"))
    try:
        gen = await p.generate(GenerationRequest(prompt="q"))
        status = await p.status()
    finally:
        await p.aclose()
    assert gen.text
    assert [r.path for r in fake.requests] == ["/v1/chat/completions", "/v1/models", "/health", "/props"]
    assert status.model_present is True and status.error is None


@pytest.mark.parametrize("endpoint", ["chat", "completion"])
async def test_streaming_with_usage_timings_and_first_token(fake, endpoint):
    p = OpenAICompatProvider(_host(fake.url, endpoint=endpoint))
    fake.script = Reply.ok("flashing at the chimney", chunk_delay=0.01, usage=LLAMA_TIMINGS)
    try:
        gen = await p.generate(GenerationRequest(prompt="q", stream=True))
    finally:
        await p.aclose()
    assert gen.text == "flashing at the chimney"
    assert gen.usage.input_tokens == 13 and gen.usage.output_tokens == 4
    assert gen.timing.eval_s == pytest.approx(0.165636)
    assert gen.finish_reason == "stop"
    assert 0 < gen.timing.time_to_first_token_s <= gen.latency_s
    body = fake.requests[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (400, False), (404, False)])
async def test_error_bodies(fake, provider, status, retryable):
    fake.script = Reply.error(status, f"boom {status}")
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert f"boom {status}" in info.value.message


async def test_malformed_json(fake, provider):
    fake.script = Reply.malformed()
    with pytest.raises(ProviderError, match="malformed JSON"):
        await provider.generate(GenerationRequest(prompt="q"))


async def test_empty_choices(fake, provider):
    fake.script = Reply.empty()
    with pytest.raises(ProviderError, match="no choices") as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.status == 200


async def test_error_event_mid_stream(fake, provider):
    fake.script = Reply.stream_error("slot crashed")
    with pytest.raises(ProviderError, match="slot crashed") as info:
        await provider.generate(GenerationRequest(prompt="q", stream=True))
    assert info.value.status is None and info.value.retryable is True


async def test_connection_reset(fake, provider):
    fake.script = Reply.reset()
    with pytest.raises(ProviderError) as info:
        await provider.generate(GenerationRequest(prompt="q"))
    assert info.value.retryable is True and info.value.status is None


async def test_status_reports_model_health_and_build(fake, provider):
    status = await provider.status()
    assert status.reachable is True
    assert status.models == ("gemma-3-270m-it-Q4_K_M.gguf",)
    assert status.model_present is True
    assert status.version == "b5432-fake0001"
    assert status.error is None

    fake.healthy = False
    status = await provider.status()
    assert status.reachable is True
    assert "Loading model" in status.error


async def test_status_of_a_server_without_health_and_another_model():
    with FakeOpenAI(health=False, model="qwen2.5-0.5b-instruct") as fake:
        p = OpenAICompatProvider(_host(fake.url))
        try:
            status = await p.status()
        finally:
            await p.aclose()
    assert status.reachable is True
    assert status.version is None
    assert status.model_present is False
    assert "not served" in status.error and "/health" not in status.error


# --- host.stream, and streams without usage (llama-cpp-python) ---------------------------------------------------

NO_USAGE = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


async def test_host_stream_streams_every_request_and_takes_usage_from_the_stream(fake):
    p = OpenAICompatProvider(_host(fake.url, endpoint="completion", stream=True))
    fake.script = Reply.ok("pan flashing at the sill", chunk_delay=0.01, usage=LLAMA_TIMINGS)
    try:
        gen = await p.generate(GenerationRequest(prompt="Question: sill?\nAnswer:"))  # request.stream is False
    finally:
        await p.aclose()
    (sent,) = fake.requests_to("/v1/completions")
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert gen.text == "pan flashing at the sill"
    assert (gen.usage.input_tokens, gen.usage.output_tokens) == (13, 4)
    assert 0 < gen.timing.time_to_first_token_s <= gen.latency_s
    assert fake.requests_to("/extras/tokenize/count") == []  # the stream had usage: nothing more to ask


async def test_stream_without_usage_leaves_output_unmeasured_and_asks_a_server_without_tokenizer_once():
    with FakeOpenAI(timings=False) as fake:  # timings=False + no usage: what llama-cpp-python streams
        fake.script = Reply.ok("36 inches [1].", chunk_delay=0.01, usage=NO_USAGE)
        p = OpenAICompatProvider(_host(fake.url, endpoint="completion", stream=True))
        try:
            first = await p.generate(GenerationRequest(prompt="Question: how far?\nAnswer:"))
            second = await p.generate(GenerationRequest(prompt="Question: how wide?\nAnswer:"))
        finally:
            await p.aclose()
        asked = fake.requests_to("/extras/tokenize/count")
    for gen in (first, second):
        assert gen.text == "36 inches [1]."
        assert gen.usage.input_tokens is None and gen.usage.output_tokens is None  # unmeasured, not 0
        assert gen.timing.total_s is None
        assert gen.timing.time_to_first_token_s is not None
    assert len(asked) == 1  # answered 404: not asked again


async def test_stream_without_usage_counts_the_prompt_with_the_servers_tokenizer():
    counted: list[dict[str, object]] = []

    async def tokenize_count(call):  # llama-cpp-python's /extras/tokenize/count
        counted.append(call.body)
        await fake.send_json(call, 200, {"count": 2 * len(str(call.body["input"]).split()) + 1})

    with FakeOpenAI(timings=False) as fake:
        fake.route("POST", "/extras/tokenize/count", tokenize_count)
        fake.script = Reply.ok("At least 1 inch [2].", usage=NO_USAGE)
        p = OpenAICompatProvider(_host(fake.url, endpoint="completion", stream=True))
        try:
            gen = await p.generate(GenerationRequest(prompt="one two three", system="four"))
        finally:
            await p.aclose()
    assert counted == [{"model": "gemma-3-270m-it-Q4_K_M", "input": "four\n\none two three"}]  # the prompt as sent
    assert gen.usage.input_tokens == 2 * 4 + 1
    assert gen.usage.output_tokens is None


async def test_no_token_count_request_for_chat_endpoints_or_when_turned_off():
    with FakeOpenAI(timings=False) as fake:
        fake.script = Reply.ok("answer", usage=NO_USAGE)
        chat = OpenAICompatProvider(_host(fake.url, endpoint="chat", stream=True))
        off = OpenAICompatProvider(_host(fake.url, endpoint="completion", stream=True), count_prompt_tokens=False)
        try:
            gens = [await provider.generate(GenerationRequest(prompt="q")) for provider in (chat, off)]
        finally:
            await chat.aclose()
            await off.aclose()
        assert fake.requests_to("/extras/tokenize/count") == []
    assert all(g.text == "answer" and g.usage.input_tokens is None for g in gens)


async def test_host_stream_false_and_request_stream_false_send_one_json_request(fake):
    p = OpenAICompatProvider(_host(fake.url, endpoint="completion", stream=False))
    try:
        gen = await p.generate(GenerationRequest(prompt="q"))
    finally:
        await p.aclose()
    assert "stream" not in fake.requests[-1].body
    assert gen.timing.time_to_first_token_s is None
