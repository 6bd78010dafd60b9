"""OpenAI-compatible servers (llama.cpp ``llama-server``, llama-cpp-python, vLLM): chat or completion endpoint.

``Host.endpoint`` picks ``/v1/chat/completions`` (messages) or ``/v1/completions`` (a prompt already in the model's
template, used for base models with stop sequences). Token counts come from ``usage``; llama.cpp's ``timings``
object, when present, gives server-side prompt and generation times in milliseconds.

Streaming (``request.stream`` or ``host.stream``) uses SSE, records the time to the first token and asks for usage
with ``stream_options.include_usage`` (vLLM, OpenAI and llama.cpp's ``llama-server`` then send it in a last chunk).
llama-cpp-python ignores that field and streams neither ``usage`` nor ``timings``. For its completion endpoint the
prompt's token count is then asked of its ``/extras/tokenize/count`` endpoint (see
:meth:`OpenAICompatProvider.count_prompt_tokens`). The output count stays unmeasured (``None``): counting streamed
chunks is not exact there. The server holds back text that may start a stop sequence and never sends the tokens that
complete one (a ``"9, 10, 11, 12"`` answer stopped at ``"11, 12"`` is 14 tokens in ``usage`` and 9 chunks in the
stream), and it sends a multi-byte character split over tokens as one chunk.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

import httpx

from harness.providers._http import HttpProvider, as_int, chat_messages, completion_prompt, error_message, ms_to_s
from harness.providers.base import HostStatus
from harness.providers.structured import StructuredRequest
from harness.providers.types import GenerationRequest, ServerTiming, Usage

if TYPE_CHECKING:
    from harness.config.fleet import Host


#: llama-cpp-python's token counter: POST {"model", "input"} -> {"count"}.
TOKENIZE_COUNT_PATH = "/extras/tokenize/count"
#: A count that takes longer than this is not worth holding the answer for.
TOKENIZE_TIMEOUT_S = 5.0


class OpenAICompatProvider(HttpProvider):
    """One OpenAI-compatible server. See ``HttpProvider`` for the constructor.

    The URL may be given with or without a trailing ``/v1``.
    """

    server_label = "OpenAI-compatible server"

    def __init__(self, host: Host, *, count_prompt_tokens: bool = True, **kwargs: Any) -> None:
        """See ``HttpProvider``; ``count_prompt_tokens=False`` turns off :meth:`count_prompt_tokens`."""
        super().__init__(host, **kwargs)
        self._api = "" if self.base_url.endswith("/v1") else "/v1"
        # /health, /props and /extras live at the server root, beside /v1.
        self._root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        # Off for chat endpoints: the server wraps the messages in its chat template, so the count of our text
        # would not be the count of what it evaluated.
        self._count_prompts = count_prompt_tokens and host.endpoint == "completion"

    def _payload(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"model": self.host.model, "max_tokens": request.max_tokens}
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        if self.host.endpoint == "completion":
            payload["prompt"] = completion_prompt(request)
            return f"{self._api}/completions", payload
        payload["messages"] = chat_messages(request)
        return f"{self._api}/chat/completions", payload

    def _structured_payload(self, request: StructuredRequest, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """/v1/chat/completions with ``response_format`` ``json_schema`` (strict): llama.cpp, vLLM and OpenAI all
        constrain the reply to the schema."""
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": request.output.__name__, "schema": schema, "strict": True},
        }
        messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
        payload: dict[str, Any] = {"model": self.host.model, "max_tokens": request.max_tokens, "messages": messages,
                                   "response_format": response_format, **request.sampling}
        return f"{self._api}/chat/completions", payload

    def _structured_reply(self, path: str, data: dict[str, Any]) -> tuple[str | None, Usage, str | None]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.fail(f"response from {path} has no choices", status=200)
        message = choices[0].get("message")
        message = message if isinstance(message, dict) else {}
        if message.get("refusal"):  # OpenAI's structured outputs refuse in a field of their own
            return None, _usage(data), "refusal"
        text = message.get("content")
        finish = choices[0].get("finish_reason")
        stop = "max_tokens" if finish == "length" else finish if isinstance(finish, str) else None
        return text if isinstance(text, str) else None, _usage(data), stop

    def _choice_text(self, choice: dict[str, Any], *, delta: bool) -> str | None:
        if self.host.endpoint == "completion":
            text = choice.get("text")
        else:
            message = choice.get("delta" if delta else "message")
            text = message.get("content") if isinstance(message, dict) else None
        return text if isinstance(text, str) else None

    async def _call(self, request: GenerationRequest) -> tuple[str, Usage, ServerTiming, str | None]:
        path, payload = self._payload(request)
        if request.stream:
            return await self._stream(path, payload)
        data = await self.post_json(path, payload)
        if "error" in data:
            raise self.fail(f"server error: {error_message(json.dumps(data))}", status=200)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.fail(f"response from {path} has no choices", status=200)
        text = self._choice_text(choices[0], delta=False)
        if text is None:
            # Some servers send null content for an empty answer; that is an answer, not an error.
            text = ""
        finish = choices[0].get("finish_reason")
        return text, _usage(data), _timing(data, None), finish if isinstance(finish, str) else None

    async def _stream(self, path: str, payload: dict[str, Any]) -> tuple[str, Usage, ServerTiming, str | None]:
        sent = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        finish: str | None = None
        usage, timing = Usage(), ServerTiming()
        done = False
        async with self.post_stream(path, payload) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" lines
                body = line[len("data:") :].strip()
                if body == "[DONE]":
                    done = True
                    break
                data = self.decode(body, status=None)
                if "error" in data:
                    raise self.fail(f"error in stream: {error_message(body)}")
                for choice in data.get("choices") or []:
                    if not isinstance(choice, dict):
                        continue
                    piece = self._choice_text(choice, delta=True)
                    if piece:
                        pieces.append(piece)
                        if first_token is None:
                            first_token = time.perf_counter() - sent
                    if isinstance(choice.get("finish_reason"), str):
                        finish = choice["finish_reason"]
                if isinstance(data.get("usage"), dict):
                    usage = _usage(data)
                if isinstance(data.get("timings"), dict):
                    timing = _timing(data, None)
        if not done and finish is None:
            raise self.fail("stream ended before [DONE]")
        if usage.input_tokens is None and isinstance(payload.get("prompt"), str):
            usage = dataclasses.replace(usage, input_tokens=await self.count_prompt_tokens(payload["prompt"]))
        return "".join(pieces), usage, dataclasses.replace(timing, time_to_first_token_s=first_token), finish

    async def count_prompt_tokens(self, prompt: str) -> int | None:
        """The server's own token count of a completion prompt, from llama-cpp-python's ``/extras/tokenize/count``.

        Called after a streamed completion answer that carried no ``usage``. One small request to the server that
        just answered (5-13 ms for a 900-token prompt, against seconds for the answer). Its count is exact:
        the endpoint and the completion endpoint both tokenize with special tokens parsed and the model's BOS token
        added, and the tests check it against the ``prompt_tokens`` of the same prompt sent non-streamed.

        Returns:
            The count, or ``None`` when counting is off, the host is a chat endpoint, the server has no such
            endpoint (it is then not asked again), or the request fails. The answer stands either way.
        """
        if not self._count_prompts:
            return None
        try:
            code, body = await self.post_probe(
                f"{self._root}{TOKENIZE_COUNT_PATH}",
                {"model": self.host.model, "input": prompt},
                timeout_s=TOKENIZE_TIMEOUT_S,
            )
        except httpx.HTTPError:
            return None
        if code in (404, 405, 501):
            self._count_prompts = False  # not llama-cpp-python: no tokenizer endpoint there
            return None
        count = body.get("count") if code == 200 and isinstance(body, dict) else None
        return as_int(count)

    async def status(self) -> HostStatus:
        """GET /v1/models (reachability, model present), /health and /props when the server has them."""
        try:
            code, models_body = await self.get_json(f"{self._api}/models")
        except httpx.HTTPError as exc:
            return HostStatus(host=self.name, reachable=False, error=f"{type(exc).__name__}: {exc}")
        problems: list[str] = []
        ids: tuple[str, ...] = ()
        present: bool | None = None
        if code == 200 and isinstance(models_body, dict):
            ids = tuple(str(m.get("id")) for m in models_body.get("data") or [] if isinstance(m, dict) and m.get("id"))
            present = any(_same_model(self.host.model, model_id) for model_id in ids)
            if not present:
                problems.append(f"model {self.host.model} not served (serves: {', '.join(ids) or 'none'})")
        else:
            problems.append(f"/v1/models answered HTTP {code}")
        version: str | None = None
        try:
            health_code, health = await self.get_json(f"{self._root}/health")
            if health_code not in (200, 404):  # 404: servers without /health (llama-cpp-python, vLLM < 0.4)
                problems.append(f"/health answered HTTP {health_code}: {error_message(json.dumps(health))}")
            props_code, props = await self.get_json(f"{self._root}/props")
            if props_code == 200 and isinstance(props, dict) and isinstance(props.get("build_info"), str):
                version = props["build_info"]
        except httpx.HTTPError as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
        return HostStatus(
            host=self.name,
            reachable=True,
            version=version,
            model_present=present,
            models=ids,
            error="; ".join(problems) or None,
        )


def _same_model(configured: str, served: str) -> bool:
    """llama.cpp reports the model file path or alias as its id; accept the path, its file name or its stem."""
    if configured == served:
        return True
    name = served.replace("\\", "/").rsplit("/", 1)[-1]
    return configured in (name, name.removesuffix(".gguf"))


def _usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(input_tokens=as_int(usage.get("prompt_tokens")), output_tokens=as_int(usage.get("completion_tokens")))


def _timing(data: dict[str, Any], first_token_s: float | None) -> ServerTiming:
    timings = data.get("timings")
    if not isinstance(timings, dict):
        return ServerTiming(time_to_first_token_s=first_token_s)
    prompt_s = ms_to_s(timings.get("prompt_ms"))
    eval_s = ms_to_s(timings.get("predicted_ms"))
    # llama.cpp reports no separate total; prompt + generation is the server's processing time.
    total = prompt_s + eval_s if prompt_s is not None and eval_s is not None else None
    return ServerTiming(total_s=total, prompt_eval_s=prompt_s, eval_s=eval_s, time_to_first_token_s=first_token_s)
