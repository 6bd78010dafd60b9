"""The request and result types every provider and the dispatcher share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "error", "timeout", "cancelled", "skipped"]
Tier = Literal["local", "cloud"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to answer.

    ``prompt`` is a completion-style prompt (used as-is by completion endpoints and as the single user message by chat
    endpoints). ``system`` is optional. Sampling fields left as ``None`` are not sent, because some servers and newer
    cloud models reject parameters they do not support.
    """

    prompt: str
    system: str | None = None
    max_tokens: int = 256
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    num_ctx: int | None = None
    stream: bool = False


@dataclass(frozen=True)
class Usage:
    """Token counts; ``None`` means the server did not report it (never a silent zero)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


@dataclass(frozen=True)
class ServerTiming:
    """Server-side durations in seconds, when the server reports them (Ollama ``*_duration``, llama.cpp ``timings``)."""

    total_s: float | None = None
    load_s: float | None = None
    prompt_eval_s: float | None = None
    eval_s: float | None = None
    time_to_first_token_s: float | None = None


@dataclass(frozen=True)
class Attempt:
    """One request to one host inside a dispatched call."""

    host: str
    outcome: Outcome
    latency_s: float
    status: int | None = None
    error: str | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class CacheEntry:
    """Where a cached answer came from: the response-cache entry (``harness.run.cache``) and the call that made it.

    Two answers with the same ``key``, ``run_id`` and ``made_at`` are the same stored answer, so a pair of them says
    nothing about the generator.
    """

    key: str
    made_at: str  # ISO 8601 UTC time the call that made the answer ended
    run_id: str | None = None  # the run whose call made it; None for an entry written before provenance was kept
    model_digest: str | None = None  # what served it, when known (Ollama's digest, the GGUF's sha256)
    digest_source: str | None = None  # where model_digest came from, or why it is unknown


@dataclass(frozen=True)
class Generation:
    """The result of one dispatched call: the answer plus everything needed to account for it."""

    text: str
    host: str
    model: str
    tier: Tier
    latency_s: float
    usage: Usage = field(default_factory=Usage)
    timing: ServerTiming = field(default_factory=ServerTiming)
    attempts: tuple[Attempt, ...] = ()
    cost_usd: float | None = None
    finish_reason: str | None = None
    cached: bool = False  # replayed from the response cache (harness.run.cache), not asked of a server
    # The cache entry this answer is: for a replay, the one it was read from; for a fresh answer, the one it was
    # stored as. None when the cache was off, or a fresh answer was not stored (the entry existed already).
    cache_entry: CacheEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
