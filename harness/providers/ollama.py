"""Ollama's native API: ``/api/chat`` (default) or ``/api/generate`` with ``raw`` (completion endpoint).

Non-streaming by default. With ``request.stream`` or ``host.stream`` the NDJSON stream is read line by line, which
gives a time-to-first-token and catches the ``{"error": ...}`` line Ollama sends mid-stream under an HTTP 200. The
final chunk carries the same counts and durations as a whole reply. Ollama stops a cancelled request either way, so
``host.stream`` is not needed to stop race losers there.
Durations arrive in nanoseconds and may be missing (e.g. ``prompt_eval_*`` when the prompt was cached).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from harness.errors import ProviderError
from harness.providers._http import (
    RETRYABLE_STATUSES,
    HttpProvider,
    as_int,
    chat_messages,
    completion_prompt,
    error_message,
    ns_to_s,
)
from harness.providers.base import HostStatus
from harness.providers.structured import StructuredRequest
from harness.providers.types import GenerationRequest, ServerTiming, Usage


class OllamaProvider(HttpProvider):
    """One Ollama server. See ``HttpProvider`` for the constructor."""

    server_label = "Ollama server"

    def _payload(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.seed is not None:
            options["seed"] = request.seed
        if request.num_ctx is not None:
            options["num_ctx"] = request.num_ctx
        if request.stop:
            options["stop"] = list(request.stop)
        payload: dict[str, Any] = {"model": self.host.model, "stream": request.stream, "options": options}
        if self.host.endpoint == "completion":
            # raw: the prompt is already in the model's template; Ollama must not wrap it again.
            payload.update(prompt=completion_prompt(request), raw=True)
            return "/api/generate", payload
        payload["messages"] = chat_messages(request)
        return "/api/chat", payload

    def _structured_payload(self, request: StructuredRequest, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """/api/chat with ``format`` set to the JSON schema: Ollama turns it into a grammar the reply must follow."""
        options: dict[str, Any] = {"num_predict": request.max_tokens, **request.sampling}
        messages = [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]
        return "/api/chat", {"model": self.host.model, "stream": False, "messages": messages, "format": schema,
                             "options": options}

    def _structured_reply(self, path: str, data: dict[str, Any]) -> tuple[str | None, Usage, str | None]:
        message = data.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        finish = _finish(data)
        return (text if isinstance(text, str) else None, _usage(data),
                "max_tokens" if finish == "length" else finish)

    def _piece(self, data: dict[str, Any]) -> str | None:
        """The text in one response object (whole reply or stream chunk)."""
        if self.host.endpoint == "completion":
            piece = data.get("response")
        else:
            message = data.get("message")
            piece = message.get("content") if isinstance(message, dict) else None
        return piece if isinstance(piece, str) else None

    def status_error(self, response: httpx.Response, body: str) -> ProviderError:
        status = response.status_code
        message = error_message(body)
        hint = ""
        if status == 404:
            hint = (
                f"run `ollama pull {self.host.model}` on {self.base_url}, "
                "or check that the url points at an Ollama server"
            )
        elif status == 503:
            hint = "the server's queue is full; lower max_concurrency or add hosts"
        return self.fail(
            f"HTTP {status}: {message}",
            status=status,
            retryable=status in RETRYABLE_STATUSES or status >= 500,
            hint=hint,
        )

    async def _call(self, request: GenerationRequest) -> tuple[str, Usage, ServerTiming, str | None]:
        path, payload = self._payload(request)
        if not request.stream:
            data = await self.post_json(path, payload)
            if "error" in data:
                raise self.fail(f"server error: {error_message(json.dumps(data))}", status=200)
            text = self._piece(data)
            if text is None:
                raise self.fail(f"response from {path} has no text: {json.dumps(data)[:160]}", status=200)
            return text, _usage(data), _timing(data, None), _finish(data)
        return await self._stream(path, payload)

    async def _stream(self, path: str, payload: dict[str, Any]) -> tuple[str, Usage, ServerTiming, str | None]:
        sent = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        async with self.post_stream(path, payload) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                data = self.decode(line, status=None)
                if "error" in data:
                    raise self.fail(f"error in stream: {error_message(line)}")
                piece = self._piece(data)
                if piece:
                    pieces.append(piece)
                    if first_token is None:
                        first_token = time.perf_counter() - sent
                if data.get("done") is True:
                    return "".join(pieces), _usage(data), _timing(data, first_token), _finish(data)
        raise self.fail("stream ended before the final (done) chunk")

    async def status(self) -> HostStatus:
        """GET /api/version and /api/tags; never raises."""
        try:
            code, version_body = await self.get_json("/api/version")
            version = version_body.get("version") if isinstance(version_body, dict) and code == 200 else None
            code, tags = await self.get_json("/api/tags")
        except httpx.HTTPError as exc:
            return HostStatus(host=self.name, reachable=False, error=f"{type(exc).__name__}: {exc}")
        if code != 200 or not isinstance(tags, dict):
            return HostStatus(host=self.name, reachable=True, version=version, error=f"/api/tags answered HTTP {code}")
        entries = [entry for entry in tags.get("models") or [] if isinstance(entry, dict)]
        names = tuple(str(entry.get("name") or entry.get("model")) for entry in entries)
        wanted = _with_tag(self.host.model)
        present = any(
            _with_tag(str(entry[key])) == wanted for entry in entries for key in ("name", "model") if entry.get(key)
        )
        return HostStatus(
            host=self.name,
            reachable=True,
            version=version,
            model_present=present,
            models=names,
            error=None if present else f"model {self.host.model} not pulled",
        )


def _with_tag(model: str) -> str:
    """Ollama treats ``llama3.2`` and ``llama3.2:latest`` as the same model."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(input_tokens=as_int(data.get("prompt_eval_count")), output_tokens=as_int(data.get("eval_count")))


def _timing(data: dict[str, Any], first_token_s: float | None) -> ServerTiming:
    return ServerTiming(
        total_s=ns_to_s(data.get("total_duration")),
        load_s=ns_to_s(data.get("load_duration")),
        prompt_eval_s=ns_to_s(data.get("prompt_eval_duration")),
        eval_s=ns_to_s(data.get("eval_duration")),
        time_to_first_token_s=first_token_s,
    )


def _finish(data: dict[str, Any]) -> str | None:
    reason = data.get("done_reason")
    return reason if isinstance(reason, str) else None
