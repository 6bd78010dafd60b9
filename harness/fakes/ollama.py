"""A fake Ollama server: /api/chat, /api/generate (streamed NDJSON or not), /api/tags, /api/version.

``format`` (``"json"`` or a JSON schema) is checked as Ollama checks it, and a schema request with no scripted text
gets a reply that satisfies the schema (:mod:`harness.fakes.structured`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from harness.fakes.script import Reply, Script
from harness.fakes.server import Call, FakeServer, count_tokens, shape_answer, split_pieces, stop_list
from harness.fakes.structured import ollama_format_problem, ollama_schema, schema_instance

_DEFAULT_MESSAGES = {
    400: "invalid request",
    500: "llama runner process has terminated: signal: killed",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def _with_tag(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


class FakeOllama(FakeServer):
    """Ollama's native API on loopback.

    Args:
        script: generation behaviour (see ``harness.fakes.script``).
        models: what ``/api/tags`` lists; generation for any other model answers 404 like Ollama
            (``llama3.2`` matches ``llama3.2:latest``).
        version: what ``/api/version`` reports.
    """

    protocol = "ollama"

    def __init__(
        self,
        script: Script = None,
        *,
        models: Sequence[str] = ("llama3.2:latest",),
        version: str = "0.6.3",
        name: str | None = None,
        default_text: str | None = None,
    ) -> None:
        super().__init__(script, name=name, default_text=default_text)
        self.models = tuple(models)
        self.version = version
        self.route("POST", "/api/chat", self._chat)
        self.route("POST", "/api/generate", self._generate)
        self.route("GET", "/api/tags", self._tags)
        self.route("GET", "/api/version", self._version)
        self.route("GET", "/", self._root)

    # --- routes ------------------------------------------------------------------------------------------------

    async def _chat(self, call: Call) -> None:
        await self._generation(call)

    async def _generate(self, call: Call) -> None:
        await self._generation(call)

    async def _generation(self, call: Call) -> None:
        model = call.body.get("model")
        if not isinstance(model, str) or not model:
            await self.send_json(call, 400, {"error": "model is required"})
            return
        if _with_tag(model) not in {_with_tag(m) for m in self.models}:
            await self.send_json(call, 404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        problem = ollama_format_problem(call.body)
        if problem is not None:
            await self.send_json(call, 400, {"error": problem})
            return
        # Ollama streams unless told not to.
        await self.serve_generation(call, stream=call.body.get("stream", True) is not False)

    async def _tags(self, call: Call) -> None:
        await self.send_json(call, 200, {"models": [_tag_entry(m) for m in self.models]})

    async def _version(self, call: Call) -> None:
        await self.send_json(call, 200, {"version": self.version})

    async def _root(self, call: Call) -> None:
        await self.send_raw(call, 200, b"Ollama is running", "text/plain; charset=utf-8")

    # --- bodies ------------------------------------------------------------------------------------------------

    def _is_chat(self, call: Call) -> bool:
        return call.record.path == "/api/chat"

    def _answer(self, call: Call, reply: Reply) -> tuple[str, str]:
        if reply.kind == "empty":
            return "", "stop"
        options = call.body.get("options") or {}
        limit = options.get("num_predict")
        schema = ollama_schema(call.body)
        text = schema_instance(schema) if reply.text is None and schema is not None else self.answer_text(reply)
        return shape_answer(
            text,
            limit if isinstance(limit, int) and limit >= 0 else None,
            stop_list(options.get("stop")),
        )

    def _prompt_tokens(self, call: Call) -> int:
        body = call.body
        if self._is_chat(call):
            messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            return sum(count_tokens(str(m.get("content", ""))) for m in messages)
        return count_tokens(str(body.get("system") or "")) + count_tokens(str(body.get("prompt") or ""))

    def _stats(self, call: Call, reply: Reply, text: str, finish: str) -> dict[str, Any]:
        total_ns = max(int(call.latency * 1e9), 1_000)
        stats: dict[str, Any] = {
            "done_reason": finish,
            "done": True,
            "total_duration": total_ns,
            "load_duration": total_ns // 20,
            "prompt_eval_count": self._prompt_tokens(call),
            "prompt_eval_duration": total_ns // 5,
            "eval_count": count_tokens(text),
            "eval_duration": total_ns * 7 // 10,
        }
        for key, value in reply.usage.items():
            if value is None:
                stats.pop(key, None)
            else:
                stats[key] = value
        return stats

    def _head(self, call: Call) -> dict[str, Any]:
        return {"model": call.body.get("model"), "created_at": _now()}

    def _piece(self, call: Call, piece: str) -> dict[str, Any]:
        if self._is_chat(call):
            return {"message": {"role": "assistant", "content": piece}}
        return {"response": piece}

    def ok_body(self, call: Call, reply: Reply) -> Any:
        text, finish = self._answer(call, reply)
        return {**self._head(call), **self._piece(call, text), **self._stats(call, reply, text, finish)}

    def stream_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        text, finish = self._answer(call, reply)
        head = self._head(call)
        lines = [{**head, **self._piece(call, p), "done": False} for p in split_pieces(text)]
        lines.append({**head, **self._piece(call, ""), **self._stats(call, reply, text, finish)})
        return [json.dumps(line).encode() + b"\n" for line in lines]

    def stream_error_chunks(self, call: Call, reply: Reply) -> list[bytes]:
        first = {**self._head(call), **self._piece(call, split_pieces(self.answer_text(reply))[0]), "done": False}
        return [json.dumps(first).encode() + b"\n", json.dumps({"error": reply.message or "error"}).encode() + b"\n"]

    def error_response(self, call: Call, reply: Reply) -> tuple[int, Any, dict[str, str]]:
        message = reply.message
        if message is None:
            if reply.status == 404:
                message = f'model "{call.body.get("model")}" not found, try pulling it first'
            else:
                message = _DEFAULT_MESSAGES.get(reply.status, "error")
        headers = {"retry-after": _header_number(reply.retry_after)} if reply.retry_after is not None else {}
        return reply.status, {"error": message}, headers

    def malformed_body(self, call: Call) -> bytes:
        return b'{"model":"' + str(call.body.get("model")).encode() + b'","created_at":"' + _now().encode() + (
            b'","message":{"role":"assistant","content":"The answ'
        )

    async def send_not_found(self, call: Call) -> None:
        await self.send_raw(call, 404, b"404 page not found", "text/plain; charset=utf-8")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _tag_entry(model: str) -> dict[str, Any]:
    name = _with_tag(model)
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-01T10:00:00.000000+00:00",
        "size": 2_019_393_189,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }

