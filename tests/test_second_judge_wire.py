"""A second judge's structured-output call on the wire: Ollama's ``format`` and OpenAI's ``response_format``
``json_schema``, sent by the providers, checked by the fakes as the real servers check them, and parsed by the
official ``ollama`` client."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from harness.config.fleet import Host
from harness.errors import ProviderError
from harness.fakes import FakeOllama, FakeOpenAI, Reply
from harness.fakes.anthropic import grade_json
from harness.grading.parse import BadOutput, ParsedGrade, parse_grade
from harness.grading.rubric import RubricOutput, grade_inputs, system_prompt, user_prompt
from harness.providers.ollama import OllamaProvider
from harness.providers.openai_compat import OpenAICompatProvider
from harness.providers.structured import StructuredRequest

SCHEMA = RubricOutput.model_json_schema()
ITEM = grade_inputs("How far up the wall?", "At least 36 inches.", ["Ice barrier: 36 inches."], "36 inches.")


def _request(max_tokens: int = 400) -> StructuredRequest:
    return StructuredRequest(system=system_prompt(), user=user_prompt(ITEM), output=RubricOutput,
                             max_tokens=max_tokens, sampling={"temperature": 0.0})


# --- Ollama ----------------------------------------------------------------------------------------------------------


async def test_ollama_provider_sends_the_rubric_schema_as_format_and_the_default_reply_is_a_grade() -> None:
    with FakeOllama(models=("qwen2.5:7b",)) as fake:
        provider = OllamaProvider(Host(name="j", url=fake.url, kind="ollama", model="qwen2.5:7b"))
        try:
            reply = await provider.structured(_request())
        finally:
            await provider.aclose()
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/api/chat"
    assert body["format"] == SCHEMA and body["stream"] is False
    assert body["options"] == {"num_predict": 400, "temperature": 0.0}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == system_prompt() and body["messages"][1]["content"] == user_prompt(ITEM)
    parsed = parse_grade(reply.text, reply.stop_reason)
    assert isinstance(parsed, ParsedGrade) and parsed.scores == {"correctness": 3, "faithfulness": 3, "completeness": 3}
    assert reply.usage.input_tokens and reply.usage.output_tokens and reply.model == "qwen2.5:7b"


async def test_ollama_scripted_json_comes_back_as_is_and_a_cut_reply_reads_as_max_tokens() -> None:
    with FakeOllama(models=("qwen2.5:7b",), script=Reply.ok(grade_json(1, 2, 0, confident_but_wrong=True))) as fake:
        provider = OllamaProvider(Host(name="j", url=fake.url, kind="ollama", model="qwen2.5:7b"))
        try:
            reply = await provider.structured(_request())
            cut = await provider.structured(_request(max_tokens=3))
        finally:
            await provider.aclose()
    parsed = parse_grade(reply.text, reply.stop_reason)
    assert isinstance(parsed, ParsedGrade) and parsed.confident_but_wrong is True
    assert parsed.scores == {"correctness": 1, "faithfulness": 2, "completeness": 0}
    assert cut.stop_reason == "max_tokens"
    assert isinstance(parse_grade(cut.text, cut.stop_reason), BadOutput)


@pytest.mark.parametrize("fmt", ["yaml", {"type": "objekt"}, {"properties": 3}])
def test_fake_ollama_refuses_a_format_that_is_not_json_or_a_schema(fmt: object) -> None:
    with FakeOllama(models=("qwen2.5:7b",)) as fake:
        response = httpx.post(f"{fake.url}/api/chat", json={
            "model": "qwen2.5:7b", "stream": False, "format": fmt, "messages": [{"role": "user", "content": "q"}]})
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid format:")
    assert fake.generations == 0  # refused before anything was generated


async def test_the_official_ollama_client_parses_a_structured_reply() -> None:
    with FakeOllama(models=("qwen2.5:7b",)) as fake:
        client = ollama.AsyncClient(host=fake.url)
        response = await client.chat(model="qwen2.5:7b", format=SCHEMA, options={"temperature": 0},
                                     messages=[{"role": "user", "content": user_prompt(ITEM)}])
        scripted = json.loads(grade_json(2, 2, 1))
        fake.script = Reply.ok(json.dumps(scripted))
        again = await client.chat(model="qwen2.5:7b", format="json", messages=[{"role": "user", "content": "q"}])
    assert fake.requests[0].body["format"] == SCHEMA
    grade = RubricOutput.model_validate_json(response.message.content or "")
    assert grade.model_dump()["correctness"] == 3 and response.done_reason == "stop"
    assert json.loads(again.message.content or "") == scripted


# --- OpenAI-compatible -----------------------------------------------------------------------------------------------


async def test_openai_provider_sends_a_strict_json_schema_response_format() -> None:
    with FakeOpenAI(script=Reply.ok(grade_json(2, 3, 1))) as fake:
        provider = OpenAICompatProvider(Host(name="j", url=fake.url, kind="openai", model="judge-7b"))
        try:
            reply = await provider.structured(_request())
        finally:
            await provider.aclose()
    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "RubricOutput", "schema": SCHEMA, "strict": True}}
    assert body["max_tokens"] == 400 and body["temperature"] == 0.0 and "stream" not in body
    parsed = parse_grade(reply.text, reply.stop_reason)
    assert isinstance(parsed, ParsedGrade) and parsed.scores == {"correctness": 2, "faithfulness": 3, "completeness": 1}
    assert reply.usage.input_tokens and reply.usage.output_tokens


async def test_openai_default_structured_reply_satisfies_the_schema_and_length_is_max_tokens() -> None:
    with FakeOpenAI() as fake:
        provider = OpenAICompatProvider(Host(name="j", url=fake.url, kind="openai", model="judge-7b"))
        try:
            reply = await provider.structured(_request())
            cut = await provider.structured(_request(max_tokens=2))
        finally:
            await provider.aclose()
    assert isinstance(parse_grade(reply.text, reply.stop_reason), ParsedGrade)
    assert cut.stop_reason == "max_tokens"


def _post(url: str, response_format: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "q"}], "response_format": response_format})


@pytest.mark.parametrize(("response_format", "words"), [
    ({"type": "xml"}, "response_format type must be one of"),
    ({"type": "json_schema"}, "'response_format.json_schema'"),
    ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "has space", "schema": SCHEMA}}, "json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "g", "schema": {"type": 7}}}, "invalid JSON Schema"),
    ({"type": "json_schema", "json_schema": {"name": "g", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}, "additionalProperties"),
    ({"type": "json_schema", "json_schema": {"name": "g", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "properties": {"a": {"type": "integer"}}}}}, "'required'"),
])
def test_fake_openai_refuses_a_bad_response_format_as_openai_does(response_format: object, words: str) -> None:
    with FakeOpenAI() as fake:
        response = _post(fake.url, response_format)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"
    assert fake.generations == 0


async def test_a_refused_schema_is_a_provider_error_naming_the_server_message() -> None:
    class Loose(RubricOutput):  # type: ignore[misc,valid-type]
        model_config = {"extra": "allow"}  # strict mode needs closed objects: the server refuses this schema

    with FakeOpenAI() as fake:
        provider = OpenAICompatProvider(Host(name="j", url=fake.url, kind="openai", model="judge-7b"))
        request = StructuredRequest(system="s", user="u", output=Loose, max_tokens=50)
        try:
            with pytest.raises(ProviderError) as raised:
                await provider.structured(request)
        finally:
            await provider.aclose()
    assert raised.value.status == 400 and "additionalProperties" in raised.value.message
