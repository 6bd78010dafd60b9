"""A fake Anthropic Messages API: POST /v1/messages (non-streaming), the Message Batches API, GET /v1/models.

Responses have the real ``Message`` shape with usage including the cache fields; errors the real
``{"type": "error", "error": {...}, "request_id": ...}`` envelope, with ``retry-after`` when scripted.

Retired models are refused as the real API refuses them: ``404`` with
``{"type": "error", "error": {"type": "not_found_error", "message": "model: <id>"}, "request_id": ...}``, on
``POST /v1/messages``, in a batch entry and on ``GET /v1/models/{id}``. By default the retired ids are those the
bundled pricing table marks retired on its own ``as_of`` date (deterministic: never the wall clock); pass
``retired=`` to choose others, or ``retired=()`` to refuse none.

Prompt caching is simulated: a system block marked ``cache_control`` is written to the cache the first time its text
is seen (``cache_creation_input_tokens``) and read from it afterwards (``cache_read_input_tokens``); either way its
tokens leave ``input_tokens``, as on the real API.

Structured output (``output_config.format``): the scripted text is returned as it is, so a test can script a good
grade (``grade_json``), malformed JSON, or anything else. Without a scripted text, a valid default grade is sent.

Batches: ``POST /v1/messages/batches`` stores the requests; ``GET /v1/messages/batches/{id}`` reports
``in_progress`` until it has been polled ``batch_polls_to_end`` times, then runs every entry through the script
(``Reply.ok`` succeeds, ``Reply.error`` errors, ``Reply.expired`` expires) and reports ``ended`` with a
``results_url``; ``GET .../results`` streams the JSONL results in reverse order (the API promises no order). Each
entry is recorded in ``requests`` under the path ``/v1/messages/batches#entry``, so tests can read every prompt.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.config.fleet import DEFAULT_CLOUD_MODEL
from harness.config.grading import DEFAULT_GRADER_MODEL
from harness.config.pricing import load_pricing
from harness.fakes.claims import default_claims, is_claims_request
from harness.fakes.script import RecordedRequest, Reply, Script
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


BATCH_ENTRY_PATH = "/v1/messages/batches#entry"


def bundled_retired_ids() -> frozenset[str]:
    """The ids the bundled pricing table says are retired on its own as-of date."""
    from harness.money.lifecycle import retired_ids

    table = load_pricing()
    return retired_ids(table, table.as_of)


def grade_json(
    correctness: int = 3,
    faithfulness: int = 3,
    completeness: int = 3,
    *,
    confident_but_wrong: bool = False,
    rationale: str = "Matches the reference on every point.",
) -> str:
    """A grade as the grader's structured output would carry it."""
    return json.dumps(
        {
            "correctness": correctness,
            "faithfulness": faithfulness,
            "completeness": completeness,
            "confident_but_wrong": confident_but_wrong,
            "rationale": rationale,
        }
    )


@dataclass
class FakeBatch:
    id: str
    entries: list[tuple[str, RecordedRequest]]
    created_at: datetime
    polls: int = 0
    results: list[dict[str, Any]] | None = None
    counts: dict[str, int] = field(default_factory=dict)


class FakeAnthropic(FakeServer):
    """The Messages API on loopback; point ``anthropic.AsyncAnthropic(base_url=fake.url)`` at it.

    Args:
        script: generation behaviour (see ``harness.fakes.script``).
        models: known model ids; None accepts any model that is not retired.
        retired: ids refused with 404 ``not_found_error``; None: those retired per the bundled pricing table.
    """

    protocol = "anthropic"

    def __init__(
        self,
        script: Script = None,
        *,
        models: Sequence[str] | None = None,
        name: str | None = None,
        default_text: str | None = None,
        batch_polls_to_end: int = 1,
        retired: Sequence[str] | None = None,
    ) -> None:
        super().__init__(script, name=name, default_text=default_text)
        self.models = tuple(models) if models is not None else None
        self.retired = frozenset(retired) if retired is not None else bundled_retired_ids()
        self.batch_polls_to_end = batch_polls_to_end
        self.batches: dict[str, FakeBatch] = {}
        self._cached_prefixes: set[str] = set()
        self.route("POST", "/v1/messages", self._messages)
        self.route("POST", "/v1/messages/batches", self._create_batch, generation=False)
        self.route_prefix("GET", "/v1/messages/batches/", self._batch_get)
        self.route("GET", "/v1/models", self._list_models)
        self.route_prefix("GET", "/v1/models/", self._get_model)

    def forget_cache(self) -> None:
        """Empty the simulated prompt cache (as if its lifetime had passed)."""
        self._cached_prefixes.clear()

    def _known(self, model: str) -> bool:
        return model not in self.retired and (self.models is None or model in self.models)

    # --- routes ------------------------------------------------------------------------------------------------

    async def _messages(self, call: Call) -> None:
        body = call.body
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                await self._send_error(call, 400, f"{name}: Field required")
                return
        if body.get("stream"):
            await self._send_error(call, 400, "stream: not supported by this fake")
            return
        if not self._known(str(body["model"])):
            await self._send_error(call, 404, f"model: {body['model']}")
            return
        await self.serve_generation(call, stream=False)

    async def _create_batch(self, call: Call) -> None:
        requests = call.body.get("requests")
        if not isinstance(requests, list) or not requests:
            await self._send_error(call, 400, "requests: Field required (a non-empty list)")
            return
        entries: list[tuple[str, RecordedRequest]] = []
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not isinstance(params, dict):
                await self._send_error(call, 400, f"requests.{index}: custom_id and params are required")
                return
            if custom_id in seen:
                await self._send_error(call, 400, f"requests.{index}.custom_id: duplicate {custom_id!r}")
                return
            seen.add(custom_id)
            entry = RecordedRequest("POST", BATCH_ENTRY_PATH, call.record.headers, params)
            self.requests.append(entry)
            entries.append((custom_id, entry))
        batch = FakeBatch("msgbatch_01" + uuid.uuid4().hex[:22], entries, datetime.now(UTC))
        self.batches[batch.id] = batch
        await self.send_json(call, 200, self._batch_body(batch))

    async def _batch_get(self, call: Call) -> None:
        rest = call.record.path.removeprefix("/v1/messages/batches/")
        batch_id, _, tail = rest.partition("/")
        batch = self.batches.get(batch_id)
        if batch is None:
            await self._send_error(call, 404, f"message batch {batch_id} not found")
            return
        if tail == "results":
            if batch.results is None:
                await self._send_error(call, 400, f"message batch {batch_id} has not ended")
                return
            lines = "".join(json.dumps(r) + "\n" for r in reversed(batch.results))
            await self.send_raw(call, 200, lines.encode(), "application/binary")
            return
        if tail:
            await self.send_not_found(call)
            return
        batch.polls += 1
        if batch.results is None and batch.polls >= self.batch_polls_to_end:
            self._end_batch(batch)
        await self.send_json(call, 200, self._batch_body(batch))

    def _end_batch(self, batch: FakeBatch) -> None:
        results: list[dict[str, Any]] = []
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for custom_id, entry in batch.entries:
            call = Call({}, _no_receive, _no_send, entry)
            model = str(entry.body.get("model"))
            if not self._known(model):  # the real API errors the entry, it does not refuse the batch
                _, body, _ = self.error_response(call, Reply.error(404, f"model: {model}"))
                results.append({"custom_id": custom_id, "result": {"type": "errored", "error": body}})
                counts["errored"] += 1
                continue
            reply = self._cursor.next(entry)
            if reply.kind == "expired":
                result: dict[str, Any] = {"type": "expired"}
            elif reply.kind in ("error", "stream_error", "malformed", "reset", "hang"):
                status = reply.status if reply.kind == "error" else 500
                _, body, _ = self.error_response(call, Reply.error(status, reply.message))
                result = {"type": "errored", "error": body}
            else:
                body = self.ok_body(call, reply)
                result = {"type": "succeeded", "message": body}
            counts[result["type"]] += 1
            results.append({"custom_id": custom_id, "result": result})
        batch.results = results
        batch.counts = counts

    def _batch_body(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.results is not None
        counts = batch.counts if ended else {
            "processing": len(batch.entries), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0
        }
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": batch.created_at.isoformat(),
            "expires_at": (batch.created_at + timedelta(hours=24)).isoformat(),
            "ended_at": datetime.now(UTC).isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    async def _list_models(self, call: Call) -> None:
        ids = [m for m in self.models or dict.fromkeys((DEFAULT_CLOUD_MODEL, DEFAULT_GRADER_MODEL, "claude-haiku-4-5"))
               if m not in self.retired]
        data = [_model_entry(i) for i in ids]
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        await self.send_json(call, 200, {"data": data, "has_more": False, "first_id": first, "last_id": last})

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

    def _cache_split(self, body: dict[str, Any]) -> tuple[int, int]:
        """(tokens written to, tokens read from) the prompt cache for this request's cache-marked system blocks."""
        system = body.get("system")
        if not isinstance(system, list):
            return 0, 0
        marked = [b for b in system if isinstance(b, dict) and b.get("cache_control")]
        if not marked:
            return 0, 0
        prefix = json.dumps([body.get("model"), marked], sort_keys=True)
        key = hashlib.sha256(prefix.encode()).hexdigest()
        tokens = sum(count_tokens(str(b.get("text", ""))) for b in marked)
        if key in self._cached_prefixes:
            return 0, tokens
        self._cached_prefixes.add(key)
        return tokens, 0

    def ok_body(self, call: Call, reply: Reply) -> Any:
        text, stop_reason, stop_sequence = self._answer(call, reply)
        written, read = self._cache_split(call.body)
        ttl_key = "ephemeral_1h_input_tokens" if '"ttl": "1h"' in json.dumps(call.body.get("system")) else (
            "ephemeral_5m_input_tokens"
        )
        usage: dict[str, Any] = {
            "input_tokens": self._input_tokens(call) - written - read,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0, ttl_key: written},
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
        if reply.text is None and isinstance(call.body.get("output_config"), dict):
            # a structured request gets valid output by default: claims for a claims request, else a grade
            if is_claims_request(call.body):
                return default_claims(call.record), "end_turn", None
            return grade_json(), "end_turn", None
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


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _no_send(message: Any) -> None:
    return None


def _text_of(content: Any) -> str:
    """Text of a system prompt or message content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _model_entry(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model, "created_at": "2025-09-29T00:00:00Z"}
