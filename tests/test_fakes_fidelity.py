"""The fakes speak the real protocols: the official ``ollama`` and ``anthropic`` clients parse what they send."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import ollama
import pytest

from harness.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, Reply, lognormal

# --- Ollama --------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_ollama():
    with FakeOllama(script=Reply.ok("Ice and water shield at the eaves.", latency=0.01)) as server:
        yield server


async def test_ollama_client_parses_chat(fake_ollama):
    client = ollama.AsyncClient(host=fake_ollama.url)
    response = await client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "What goes at the eaves?"}],
        options={"temperature": 0, "num_predict": 50},
    )
    assert response.message.role == "assistant"
    assert response.message.content == "Ice and water shield at the eaves."
    assert response.done is True and response.done_reason == "stop"
    assert response.prompt_eval_count == 5 and response.eval_count == 7
    assert response.total_duration >= response.eval_duration > 0
    assert fake_ollama.requests[-1].body["options"] == {"temperature": 0, "num_predict": 50}


async def test_ollama_client_parses_generate(fake_ollama):
    client = ollama.AsyncClient(host=fake_ollama.url)
    response = await client.generate(model="llama3.2:latest", prompt="Q: eaves?\nA:", raw=True)
    assert response.response == "Ice and water shield at the eaves."
    assert response.done is True and response.eval_count == 7


@pytest.mark.parametrize("kind", ["chat", "generate"])
async def test_ollama_client_parses_streams(fake_ollama, kind):
    client = ollama.AsyncClient(host=fake_ollama.url)
    if kind == "chat":
        stream = await client.chat(model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True)
        parts = [p async for p in stream]
        text = "".join(p.message.content for p in parts)
    else:
        parts = [p async for p in await client.generate(model="llama3.2", prompt="q", stream=True)]
        text = "".join(p.response for p in parts)
    assert text == "Ice and water shield at the eaves."
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].eval_count == 7 and parts[-1].done_reason == "stop"


async def test_ollama_client_parses_tags(fake_ollama):
    listing = await ollama.AsyncClient(host=fake_ollama.url).list()
    assert [m.model for m in listing.models] == ["llama3.2:latest"]
    assert listing.models[0].details.quantization_level == "Q4_K_M"
    assert listing.models[0].size > 0


async def test_ollama_client_sees_404_for_unpulled_model(fake_ollama):
    client = ollama.AsyncClient(host=fake_ollama.url)
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model="mistral", messages=[{"role": "user", "content": "?"}])
    assert info.value.status_code == 404
    assert "not found" in info.value.error


@pytest.mark.parametrize("status", [500, 503])
async def test_ollama_client_sees_error_statuses(fake_ollama, status):
    fake_ollama.script = Reply.error(status)
    with pytest.raises(ollama.ResponseError) as info:
        await ollama.AsyncClient(host=fake_ollama.url).generate(model="llama3.2", prompt="q")
    assert info.value.status_code == status
    assert info.value.error  # the {"error": ...} text, unwrapped by the client


async def test_ollama_client_sees_error_line_mid_stream(fake_ollama):
    fake_ollama.script = Reply.stream_error("llama runner process has terminated")
    client = ollama.AsyncClient(host=fake_ollama.url)
    seen = []
    with pytest.raises(ollama.ResponseError) as info:
        async for part in await client.chat(model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True):
            seen.append(part)
    assert len(seen) == 1  # one good chunk under HTTP 200, then the error line
    assert info.value.error == "llama runner process has terminated"


def test_ollama_sync_client_and_root(fake_ollama):
    assert httpx.get(fake_ollama.url + "/").text == "Ollama is running"
    assert httpx.get(fake_ollama.url + "/api/version").json() == {"version": "0.6.3"}
    response = ollama.Client(host=fake_ollama.url).chat(model="llama3.2", messages=[{"role": "user", "content": "q"}])
    assert response.message.content == "Ice and water shield at the eaves."


# --- Anthropic -----------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_anthropic():
    with FakeAnthropic(script=Reply.ok("Code R905.1.2 requires it.")) as server:
        yield server


async def test_anthropic_sdk_parses_messages(fake_anthropic):
    fake_anthropic.script = Reply.ok("Code R905.1.2 requires it.", usage={"cache_read_input_tokens": 12})
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake_anthropic.url, max_retries=0)
    message = await client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        system="Cite codes.",
        messages=[{"role": "user", "content": "Is ice barrier required?"}],
    )
    await client.close()
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].type == "text" and message.content[0].text == "Code R905.1.2 requires it."
    assert message.role == "assistant" and message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens == 6 and message.usage.output_tokens == 4
    assert message.usage.cache_read_input_tokens == 12 and message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


async def test_anthropic_sdk_error_classes(fake_anthropic):
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake_anthropic.url, max_retries=0)
    request = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "q"}]}

    fake_anthropic.script = Reply.rate_limited(retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(**request)
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.request_id and limited.value.request_id.startswith("req_")
    assert limited.value.body["error"]["type"] == "rate_limit_error"

    fake_anthropic.script = Reply.spend_limit()
    with pytest.raises(anthropic.RateLimitError) as spent:
        await client.messages.create(**request)
    assert "retry-after" not in spent.value.response.headers
    assert getattr(spent.value, "error_code", "enforced_spend_limit_reached") == "enforced_spend_limit_reached"
    assert spent.value.body["error"]["details"]["error_code"] == "enforced_spend_limit_reached"

    fake_anthropic.script = Reply.overloaded()
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        await client.messages.create(**request)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}

    fake_anthropic.script = Reply.error(400, "messages: at least one message is required")
    with pytest.raises(anthropic.BadRequestError, match="at least one message"):
        await client.messages.create(**request)
    await client.close()

    missing = httpx.post(fake_anthropic.url + "/v1/messages", json={"model": "m", "messages": []})
    assert missing.status_code == 400
    assert missing.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}


async def test_anthropic_sdk_own_retry_honours_the_fakes_retry_after(fake_anthropic):
    fake_anthropic.script = [Reply.rate_limited(retry_after=0.2), Reply.ok("done")]
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake_anthropic.url, max_retries=1)
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "q"}]
    )
    await client.close()
    assert message.content[0].text == "done"
    assert [r.headers["x-stainless-retry-count"] for r in fake_anthropic.requests_to("/v1/messages")] == ["0", "1"]


async def test_anthropic_sdk_parses_models(fake_anthropic):
    client = anthropic.AsyncAnthropic(api_key="test", base_url=fake_anthropic.url, max_retries=0)
    model = await client.models.retrieve("claude-haiku-4-5")
    listing = await client.models.list()
    await client.close()
    assert model.id == "claude-haiku-4-5" and model.type == "model"
    assert [m.id async for m in listing] == ["claude-sonnet-4-6", "claude-haiku-4-5"]


# --- llama.cpp / OpenAI shape ---------------------------------------------------------------------------------------


def test_openai_fake_matches_llama_server_shapes():
    """No OpenAI client is installed; check the documented llama.cpp fields directly."""
    with FakeOpenAI(script=Reply.ok("Hi there")) as fake:
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
        chat = httpx.post(fake.url + "/v1/chat/completions", json=body).json()
        completion = httpx.post(fake.url + "/v1/completions", json={"prompt": "hello", "max_tokens": 8}).json()
        models = httpx.get(fake.url + "/v1/models").json()
        health = httpx.get(fake.url + "/health").json()
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "Hi there"}
    assert chat["usage"] == {"completion_tokens": 2, "prompt_tokens": 1, "total_tokens": 3}
    assert set(chat["timings"]) >= {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_second"}
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"] == "Hi there"
    assert models["object"] == "list" and models["data"][0]["id"].endswith(".gguf")
    assert health == {"status": "ok"}


# --- the fakes themselves --------------------------------------------------------------------------------------------


async def test_fake_handles_fifty_concurrent_requests():
    """Fifty requests wait out their latency at the same time on the fake's one server thread."""
    with FakeOpenAI(script=Reply.ok("x", latency=1.0)) as fake:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=fake.url, limits=limits, timeout=30) as client:
            body = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 4}
            responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(50)))
    assert all(r.status_code == 200 for r in responses)
    assert fake.completed == 50 and fake.disconnects == 0
    assert fake.max_in_flight == 50


def test_script_sequence_then_default_and_callable():
    with FakeOllama(script=[Reply.error(503), Reply.ok("second")], default_text="default") as fake:
        url = fake.url + "/api/generate"
        body = {"model": "llama3.2", "prompt": "q", "stream": False}
        assert httpx.post(url, json=body).status_code == 503
        assert httpx.post(url, json=body).json()["response"] == "second"
        assert httpx.post(url, json=body).json()["response"] == "default"
        fake.script = lambda request: Reply.ok(request.body["prompt"].upper())
        assert httpx.post(url, json={**body, "prompt": "echo"}).json()["response"] == "ECHO"
        assert fake.generations == 4 and fake.completed == 4


def test_lognormal_is_reproducible_and_has_the_median():
    draw_a, draw_b = lognormal(0.1, 0.5, seed=3), lognormal(0.1, 0.5, seed=3)
    a = [draw_a() for _ in range(2001)]
    assert a[:5] == [draw_b() for _ in range(5)]
    assert sorted(a)[1000] == pytest.approx(0.1, rel=0.1)


async def test_fakes_work_as_async_context_managers():
    async with FakeOllama(script=Reply.ok("async")) as fake:
        response = await ollama.AsyncClient(host=fake.url).generate(model="llama3.2", prompt="q")
    assert response.response == "async"
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


def test_a_stopped_fake_refuses_connections_and_restarts_on_the_same_port():
    fake = FakeOllama().start()
    url = fake.url
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/version")
    fake.start()
    try:
        assert fake.url == url
        assert httpx.get(url + "/api/version").status_code == 200
    finally:
        fake.stop()
