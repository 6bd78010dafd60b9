"""A fake llama.cpp ``llama-server``: /v1/chat/completions, /v1/completions (JSON or SSE), /v1/models, /health, /props.

Responses carry llama.cpp's ``timings`` object unless ``timings=False`` (then it looks like llama-cpp-python or
vLLM); ``health=False`` removes /health and /props like servers that do not have them. The model name in requests is
not checked, as llama.cpp serves its one loaded model whatever the request says. ``response_format`` is checked by
OpenAI's rules (a ``json_schema`` needs a name and a valid schema; ``strict`` needs closed objects that require every
property), and a schema request with no scripted text gets a reply that satisfies the schema.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from harness.fakes.script import Reply, Script
from harness.fakes.server import Call, FakeServer, count_tokens, shape_answer, split_pieces, stop_list
from harness.fakes.structured import openai_schema, response_format_problem, schema_instance

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}
_DEFAULT_MESSAGES = {
    400: "the request exceeds the available context size, try increasing it",
    401: "Invalid API Key",
    404: "File Not Found",
    500: "Internal Server Error",
    503: "Loading model",
}
BUILD_INFO = "b5432-fake0001"


class FakeOpenAI(FakeServer):
    """An OpenAI-compatible server in llama.cpp's dialect on loopback.

    Args:
        script: generation behaviour (see ``harness.fakes.script``).
        model: the id ``/v1/models`` lists and responses name.
        timings: include llama.cpp's ``timings`` object.
        health: serve ``/health`` and ``/props``.
        total_slots: reported by ``/props``.
    """

    protocol = "openai"

    def __init__(
        self,
        script: Script = None,
        *,
        model: str = "gemma-3-270m-it-Q4_K_M.gguf",
        timings: bool = True,
        health: bool = True,
        total_slots: int = 1,
        name: str | None = None,
        default_text: str | None = None,
    ) -> None:
        super().__init__(script, name=name, default_text=default_text)
        self.model = model
        self.timings = timings
        self.healthy = True
        self.total_slots = total_slots
        self.route("POST", "/v1/chat/completions", self._generation)
        self.route("POST", "/v1/completions", self._generation)
        self.route("GET", "/v1/models", self._models)
        if health:
            self.route("GET", "/health", self._health)
            self.route("GET", "/props", self._props)

    # --- routes ------------------------------------------------------------------------------------------------

    async def _generation(self, call: Call) -> None:
        problem = response_format_problem(call.body)
        if problem is not None:
            await self.send_json(call, 400, _error_body(400, problem))
            return
        await self.serve_generation(call, stream=call.body.get("stream") is True)

    async def _models(self, call: Call) -> None:
        entry = {"id": self.model, "object": "model", "created": int(time.time()), "owned_by": "llamacpp"}
        await self.send_json(call, 200, {"object": "list", "data": [entry]})

    async def _health(self, call: Call) -> None:
        if self.healthy:
            await self.send_json(call, 200, {"status": "ok"})
        else:
            await self.send_json(call, 503, _error_body(503, "Loading model"))

    async def _props(self, call: Call) -> None:
        await self.send_json(
            call,
            200,
            {"build_info": BUILD_INFO, "model_path": f"/models/{self.model}", "total_slots": self.total_slots},
        )

    async def send_not_found(self, call: Call) -> None:
        await self.send_json(call, 404, _error_body(404, "File Not Found"))

    # --- bodies ------------------------------------------------------------------------------------------------

    def _is_chat(self, call: Call) -> bool:
        return call.record.path.endswith("/chat/completions")

    def _answer(self, call: Call, reply: Reply) -> tuple[str, str]:
        limit = call.body.get("max_tokens")
        schema = openai_schema(call.body)
        text = schema_instance(schema) if reply.text is None and schema is not None else self.answer_text(reply)
        return shape_answer(
            text,
            limit if isinstance(limit, int) and limit >= 0 else None,
            stop_list(call.body.get("stop")),
        )

    def _prompt_tokens(self, call: Call) -> int:
        if self._is_chat(call):
            messages = [m for m in call.body.get("messages") or [] if isinstance(m, dict)]
            return sum(count_tokens(str(m.get("content", ""))) for m in messages)
        return count_tokens(str(call.body.get("prompt") or ""))

    def _envelope(self, call: Call, *, chunk: bool) -> dict[str, Any]:
        if self._is_chat(call):
            obj, prefix = ("chat.completion.chunk" if chunk else "chat.completion"), "chatcmpl-"
        else:
            obj, prefix = "text_completion", "cmpl-"
        return {
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": BUILD_INFO,
            "object": obj,
            "id": prefix + uuid.uuid4().hex[:24],
        }

    def _extras(self, call: Call, reply: Reply, text: str) -> dict[str, Any]:
        prompt_n, predicted_n = self._prompt_tokens(call), count_tokens(text)
        usage = {"completion_tokens": predicted_n, "prompt_tokens": prompt_n, "total_tokens": prompt_n + predicted_n}
        extras: dict[str, Any] = {"usage": usage}
        if self.timings:
            prompt_ms, predicted_ms = call.latency * 1000 * 0.25, call.latency * 1000 * 0.7
            extras["timings"] = {
                "cache_n": 0,
                "prompt_n": prompt_n,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
                "prompt_per_second": 1000 * prompt_n / prompt_ms if prompt_ms else 0.0,
                "predicted_n": predicted_n,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
                "predicted_per_second": 1000 * predicted_n / predicted_ms if predicted_ms else 0.0,
            }
        for key, value in reply.usage.items():
            target = extras["usage"] if key in extras["usage"] else extras.get("timings", extras["usage"])
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        return extras

    def _choice(self, call: Call, text: str | None, finish: str | None, *, chunk: bool) -> dict[str, Any]:
        if not self._is_chat(call):
            return {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        if chunk:
            return {"finish_reason": finish, "index": 0, "delta": {"content": text} if text is not None else {}}
        return {"finish_reason": finish, "index": 0, "message": {"role": "assistant", "content": text}}

    def ok_body(self, call: Call, reply: Reply) -> Any:
        if reply.kind == "empty":
            return {"choices": [], **self._envelope(call, chunk=False), **self._extras(call, reply, "")}
        text, finish = self._answer(call, reply)
        return {
            "choices": [self._choice(call, text, finish, chunk=False)],
            **self._envelope(call, chunk=False),
            **self._extras(call, reply, text),
        }

    stream_content_type = "text/event-stream"

    def stream_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        text, finish = self._answer(call, reply)
        if reply.kind == "empty":
            text = ""
        events = [
            {"choices": [self._choice(call, piece, None, chunk=True)], **self._envelope(call, chunk=True)}
            for piece in split_pieces(text)
        ]
        last = {"choices": [self._choice(call, None, finish, chunk=True)], **self._envelope(call, chunk=True)}
        extras = self._extras(call, reply, text)
        if "timings" in extras:
            last["timings"] = extras["timings"]  # llama.cpp puts timings on the final chunk
        events.append(last)
        if (call.body.get("stream_options") or {}).get("include_usage"):
            events.append({"choices": [], **self._envelope(call, chunk=True), "usage": extras["usage"]})
        return [_sse(event) for event in events] + [b"data: [DONE]\n\n"]

    def stream_error_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        first = split_pieces(self.answer_text(reply))[0]
        event = {"choices": [self._choice(call, first, None, chunk=True)], **self._envelope(call, chunk=True)}
        return [_sse(event), _sse(_error_body(500, reply.message or "error"))]

    def error_response(self, call: Call, reply: Reply) -> tuple[int, Any, dict[str, str]]:
        message = reply.message or _DEFAULT_MESSAGES.get(reply.status, "error")
        body = _error_body(reply.status, message, reply.error_type)
        headers = {"retry-after": str(int(reply.retry_after))} if reply.retry_after is not None else {}
        return reply.status, body, headers

    def malformed_body(self, call: Call) -> bytes:
        return b'{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":"The ans'


def _error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    kind = error_type or _ERROR_TYPES.get(status, "server_error")
    return {"error": {"code": status, "message": message, "type": kind}}


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"
