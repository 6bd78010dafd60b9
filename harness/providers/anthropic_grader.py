"""The grader's Claude calls: one structured-output message, and the Message Batches API.

Structured output goes through ``output_config.format`` with a JSON schema made from the caller's pydantic model by
the SDK's own ``transform_schema`` (the schema ``messages.parse`` would send). The reply's text comes back as it
is: parsing it into the model is the caller's step (call / parse / score), so a malformed reply can be retried
there instead of surfacing as an exception in the middle of the call.

The rubric is a system block marked for prompt caching when it is long enough for the model to cache it
(``CACHE_MIN_TOKENS``); a shorter block would be billed at the normal rate anyway, so it is not marked.

Batches: ``create_batch`` sends (custom id, params) pairs; ``batch_state`` polls; ``batch_results`` streams the
JSONL results and returns them by custom id. Expired, errored and canceled requests come back as outcomes with a
reason, never as missing entries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anthropic

from harness.money.tokens import estimate_tokens
from harness.providers.anthropic_cloud import AnthropicProvider
from harness.providers.structured import BatchOutcome, BatchState, StructuredReply, StructuredRequest
from harness.providers.types import Usage

# Shortest prompt prefix each model family caches (tokens), from Anthropic's prompt-caching documentation;
# longest prefix first so dated snapshots match their family.
CACHE_MIN_TOKENS: dict[str, int] = {
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 1024,  # as documented; a marked prefix the API declines to cache is billed as plain input
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}


def cache_min_tokens(model: str) -> int | None:
    """The model's shortest cacheable prefix, or None when unknown (then nothing is marked for caching)."""
    for family in sorted(CACHE_MIN_TOKENS, key=len, reverse=True):
        if model == family or model.startswith(family + "-"):
            return CACHE_MIN_TOKENS[family]
    return None


class AnthropicGraderClient(AnthropicProvider):
    """Claude as the grader; shares the cloud provider's client, retries and error classification."""

    def caches_system(self, request: StructuredRequest) -> bool:
        return self.caches_system_text(request.system)

    def caches_system_text(self, system: str) -> bool:
        """Whether a system prompt is long enough for this model to cache (else it is not marked)."""
        minimum = cache_min_tokens(self.model)
        return minimum is not None and estimate_tokens(system) >= minimum

    def params(self, request: StructuredRequest) -> dict[str, Any]:
        """The Messages API body; the same for a direct call and a batch entry."""
        system: dict[str, Any] = {"type": "text", "text": request.system}
        if self.caches_system(request):
            system["cache_control"] = {"type": "ephemeral", "ttl": request.cache_ttl}
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "system": [system],
            "messages": [{"role": "user", "content": request.user}],
            "output_config": {"format": {"type": "json_schema", "schema": anthropic.transform_schema(request.output)}},
        }
        params.update(request.sampling)  # only what the suite set: some models reject sampling parameters
        return params

    @staticmethod
    def _sdk_kwargs(params: dict[str, Any]) -> dict[str, Any]:
        """This SDK has no sampling keywords any more; they go in ``extra_body`` (a batch entry takes them as is)."""
        sampling = {k: params[k] for k in ("temperature", "top_p") if k in params}
        kwargs = {k: v for k, v in params.items() if k not in sampling}
        if sampling:
            kwargs["extra_body"] = sampling
        return kwargs

    async def structured(self, request: StructuredRequest) -> StructuredReply:
        """One call with bounded, classified retries (429 with retry-after, 529, 5xx; never the spend limit)."""
        started = time.perf_counter()
        kwargs = self._sdk_kwargs(self.params(request))
        message = await self._with_retries(lambda: self._client.messages.create(**kwargs))
        return _reply(message, self.model, time.perf_counter() - started)

    async def create_batch(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        """Submit (custom id, params) pairs as one Message Batch; returns its id."""
        body = [{"custom_id": custom_id, "params": params} for custom_id, params in requests]
        batch = await self._with_retries(lambda: self._client.messages.batches.create(requests=body))  # type: ignore[arg-type]
        return str(batch.id)

    async def batch_state(self, batch_id: str) -> BatchState:
        batch = await self._with_retries(lambda: self._client.messages.batches.retrieve(batch_id))
        return BatchState(batch.id, batch.processing_status, batch.request_counts.model_dump())

    async def batch_results(self, batch_id: str) -> dict[str, BatchOutcome]:
        """Every result of an ended batch, by custom id (results come in any order)."""

        async def fetch() -> dict[str, BatchOutcome]:
            out: dict[str, BatchOutcome] = {}
            decoder = await self._client.messages.batches.results(batch_id)
            async for entry in decoder:
                out[entry.custom_id] = _outcome(entry, self.model)
            return out

        return await self._with_retries(fetch)


def _reply(message: Any, model: str, latency_s: float) -> StructuredReply:
    texts = [block.text for block in message.content if getattr(block, "type", None) == "text"]
    usage = message.usage
    return StructuredReply(
        text="".join(texts) if texts else None,
        usage=Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", None),
            cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", None),
        ),
        stop_reason=message.stop_reason,
        model=str(getattr(message, "model", None) or model),
        latency_s=latency_s,
    )


def _outcome(entry: Any, model: str) -> BatchOutcome:
    result = entry.result
    kind = result.type
    if kind == "succeeded":
        return BatchOutcome(entry.custom_id, reply=_reply(result.message, model, 0.0))
    if kind == "errored":
        error = getattr(result.error, "error", None)
        detail = f"{getattr(error, 'type', 'error')}: {getattr(error, 'message', '')}".strip(": ")
        return BatchOutcome(entry.custom_id, error=f"batch request errored ({detail})")
    if kind == "expired":
        return BatchOutcome(entry.custom_id, error="batch request expired before it was processed (24 h limit)")
    return BatchOutcome(entry.custom_id, error=f"batch request {kind}")


__all__ = [
    "AnthropicGraderClient",
    "BatchOutcome",
    "BatchState",
    "StructuredReply",
    "StructuredRequest",
]
