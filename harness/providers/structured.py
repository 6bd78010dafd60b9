"""Provider-neutral types of a structured-output call (the grader's), so callers need not import an SDK."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from harness.providers.types import Usage


@dataclass(frozen=True)
class StructuredRequest:
    """One call whose reply must match ``output``'s JSON schema. ``sampling`` holds only what the suite set."""

    system: str
    user: str
    output: type[BaseModel]
    max_tokens: int
    cache_ttl: Literal["5m", "1h"] = "5m"
    sampling: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StructuredReply:
    """The reply as it came: its text is parsed by the caller."""

    text: str | None
    usage: Usage
    stop_reason: str | None
    model: str
    latency_s: float = 0.0


@dataclass(frozen=True)
class BatchState:
    id: str
    status: str  # in_progress | canceling | ended
    counts: Mapping[str, int]


@dataclass(frozen=True)
class BatchOutcome:
    """One request's result in an ended batch: a reply, or why there is none (errored, expired, canceled)."""

    custom_id: str
    reply: StructuredReply | None = None
    error: str | None = None
