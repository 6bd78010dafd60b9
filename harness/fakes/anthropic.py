"""A fake Anthropic Messages API: POST /v1/messages (non-streaming), GET /v1/models and /v1/models/{id}.

Responses have the real ``Message`` shape with usage including the cache fields; errors the real
``{"type": "error", "error": {...}, "request_id": ...}`` envelope, with ``retry-after`` when scripted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from harness.fakes.script import Reply, Script
from harness.fakes.server import Call, FakeServer, count_tokens

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    400: "invalid request",
    401: "invalid x-api-key",
    404: "model not found",
    429: "Rate limited",
    500: "Internal server error",
    529: "Overloaded",
}


class FakeAnthropic(FakeServer):
    """The Messages API on loopback; point ``anthropic.AsyncAnthropic(base_url=fake.url)`` at it.

    Args:
        script: generation behaviour (see ``harness.fakes.script``).
        models: known model ids; None accepts any model.
    """

    protocol = "anthropic"

    def __init__(
        self,
        script: Script = None,
        *,
        models: Sequence[str] | None = None,
        name: str | None = None,
        default_text: str | None = None,
    ) -> None:
        super().__init__(script, name=name, default_text=default_text)
        self.models = tuple(models) if models is not None else None
        self.route("POST", "/v1/messages", self._messages)
        self.route("GET", "/v1/models", self._list_models)
        self.route_prefix("GET", "/v1/models/", self._get_model)

    def _known(self, model: str) -> bool:
        return self.models is None or model in self.models

    # --- routes ------------------------------------------------------------------------------------------------

    async def _messages(self, call: Call) -> None:
        body = call.body
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                await self._send_error(call, 400, f"{field}: Field required")
                return
        if body.get("stream"):
            await self._send_error(call, 400, "stream: not supported by this fake")
            return
        if not self._known(str(body["model"])):
            await self._send_error(call, 404, f"model: {body['model']}")
            return
        await self.serve_generation(call, stream=False)

    async def _list_models(self, call: Call) -> None:
        ids = list(self.models or ("claude-sonnet-4-5", "claude-haiku-4-5"))
        data = [_model_entry(i) for i in ids]
        await self.send_json(call, 200, {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]})

    async def _get_model(self, call: Call) -> None:
        model = call.record.path.removeprefix("/v1/models/")
        if not self._known(model):
            await self._send_error(call, 404, f"model: {model}")
            return
        await self.send_json(call, 200, _model_entry(model))

    async def _send_error(self, call: Call, status: int, message: str) -> None:
        status, body, headers = self.error_response(call, Reply.error(status, message))
        await self.send_json(call, status, body, headers)

    async def send_not_found(self, call: Call) -> None:
        await self._send_error(call, 404, "Not found")

    # --- bodies ------------------------------------------------------------------------------------------------

    def _input_tokens(self, call: Call) -> int:
        total = count_tokens(_text_of(call.body.get("system")))
        for message in call.body.get("messages") or []:
            if isinstance(message, dict):
                total += count_tokens(_text_of(message.get("content")))
        return total

    def ok_body(self, call: Call, reply: Reply) -> Any:
        text, stop_reason, stop_sequence = self._answer(call, reply)
        usage: dict[str, Any] = {
            "input_tokens": self._input_tokens(call),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": count_tokens(text),
            "service_tier": "standard",
        }
        for key, value in reply.usage.items():
            if value is None:
                usage.pop(key, None)
            else:
                usage[key] = value
        return {
            "id": "msg_01" + uuid.uuid4().hex[:22],
            "type": "message",
            "role": "assistant",
            "model": call.body.get("model"),
            "content": [{"type": "text", "text": text}] if reply.kind != "empty" else [],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    def _answer(self, call: Call, reply: Reply) -> tuple[str, str, str | None]:
        if reply.kind == "empty":
            return "", "end_turn", None
        text = self.answer_text(reply)
        for sequence in call.body.get("stop_sequences") or []:
            if isinstance(sequence, str) and sequence and sequence in text:
                return text[: text.index(sequence)], "stop_sequence", sequence
        limit = call.body.get("max_tokens")
        words = text.split()
        if isinstance(limit, int) and len(words) > limit:
            return " ".join(words[:limit]), "max_tokens", None
        return text, "end_turn", None

    def error_response(self, call: Call, reply: Reply) -> tuple[int, Any, dict[str, str]]:
        request_id = "req_01" + uuid.uuid4().hex[:22]
        error: dict[str, Any] = {
            "type": reply.error_type or _ERROR_TYPES.get(reply.status, "api_error"),
            "message": reply.message or _DEFAULT_MESSAGES.get(reply.status, "error"),
        }
        if reply.details is not None:
            error["details"] = dict(reply.details)
        headers = {"request-id": request_id}
        if reply.retry_after is not None:
            value = reply.retry_after
            headers["retry-after"] = str(int(value)) if float(value).is_integer() else repr(float(value))
        return reply.status, {"type": "error", "error": error, "request_id": request_id}, headers

    def malformed_body(self, call: Call) -> bytes:
        return b'{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text","text":"The ans'


def _text_of(content: Any) -> str:
    """Text of a system prompt or message content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _model_entry(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
