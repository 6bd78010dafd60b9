"""What a fake server does with each generation request: a ``Reply``, picked by a script.

A script is one ``Reply`` (used for every request), a sequence of replies (used in order, then the fake's default),
or a callable that picks a reply from the recorded request.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ReplyKind = Literal["ok", "error", "malformed", "stream_error", "hang", "reset", "empty", "expired"]
Latency = float | Callable[[], float]


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake saw it. ``body`` is the decoded JSON, or the raw text if it was not JSON."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    query: str = ""


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        kind: ok | error | malformed | stream_error | hang | reset | empty | expired (a Message Batch entry only).
        text: answer text (ok); None uses the fake's default text.
        latency: seconds before the first byte, a number or a zero-argument callable (e.g. ``lognormal(...)``).
        status: HTTP status for ``error``.
        message: error message for ``error``/``stream_error``; None uses a realistic default for the status.
        error_type: protocol error type (OpenAI ``type``, Anthropic ``error.type``); None derives it from status.
        details: Anthropic ``error.details`` object.
        retry_after: seconds for a ``retry-after`` header (errors only).
        chunk_delay: seconds between stream chunks.
        usage: overrides of reported usage/timing fields in the protocol's own names (e.g.
            ``{"cache_read_input_tokens": 100}``); None removes the field.
        headers: extra response headers.
        until: hold the answer, once its latency has passed, until this event is set (the client may still leave
            meanwhile): a test releases answers when it has looked at the state they hold, instead of racing a clock.
    """

    kind: ReplyKind = "ok"
    text: str | None = None
    latency: Latency = 0.0
    status: int = 200
    message: str | None = None
    error_type: str | None = None
    details: Mapping[str, Any] | None = None
    retry_after: float | None = None
    chunk_delay: float = 0.0
    usage: Mapping[str, int | None] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    until: threading.Event | None = None

    def delay(self) -> float:
        value = self.latency() if callable(self.latency) else self.latency
        return max(0.0, float(value))

    # --- constructors ------------------------------------------------------------------------------------------

    @classmethod
    def ok(cls, text: str | None = None, *, latency: Latency = 0.0, **kwargs: Any) -> Reply:
        return cls("ok", text=text, latency=latency, **kwargs)

    @classmethod
    def error(cls, status: int, message: str | None = None, *, latency: Latency = 0.0, **kwargs: Any) -> Reply:
        return cls("error", status=status, message=message, latency=latency, **kwargs)

    @classmethod
    def malformed(cls, *, latency: Latency = 0.0) -> Reply:
        """HTTP 200 with a truncated JSON body."""
        return cls("malformed", latency=latency)

    @classmethod
    def stream_error(cls, message: str = "llama runner process has terminated", *, latency: Latency = 0.0) -> Reply:
        """A streamed request gets one chunk then an error object under HTTP 200; a non-streamed one an HTTP 500."""
        return cls("stream_error", message=message, latency=latency)

    @classmethod
    def hang(cls) -> Reply:
        """Never answer; returns when the client disconnects (counted) or the fake stops."""
        return cls("hang")

    @classmethod
    def reset(cls, *, latency: Latency = 0.0) -> Reply:
        """Close the connection abruptly (TCP RST) without a response."""
        return cls("reset", latency=latency)

    @classmethod
    def empty(cls, *, latency: Latency = 0.0) -> Reply:
        """A well-formed response without an answer (OpenAI: ``choices: []``)."""
        return cls("empty", latency=latency)

    @classmethod
    def expired(cls) -> Reply:
        """A Message Batch entry that expired before it was processed (Anthropic fake, batches only)."""
        return cls("expired")

    @classmethod
    def rate_limited(cls, retry_after: float | None = 0.0, *, latency: Latency = 0.0) -> Reply:
        """Anthropic 429 ``rate_limit_error`` with a ``retry-after`` header."""
        return cls(
            "error",
            status=429,
            error_type="rate_limit_error",
            message="This request would exceed your organization's rate limit of 50 requests per minute.",
            retry_after=retry_after,
            latency=latency,
        )

    @classmethod
    def overloaded(cls, *, latency: Latency = 0.0) -> Reply:
        """Anthropic 529 ``overloaded_error``."""
        return cls("error", status=529, error_type="overloaded_error", message="Overloaded", latency=latency)

    @classmethod
    def spend_limit(cls, *, latency: Latency = 0.0) -> Reply:
        """Anthropic's monthly spend cap: 429 ``rate_limit_error`` with a details code and no retry-after."""
        return cls(
            "error",
            status=429,
            error_type="rate_limit_error",
            message="You have reached your specified API usage limits. "
            "You will regain access on 2026-12-01 at 00:00 UTC.",
            details={"error_code": "enforced_spend_limit_reached"},
            latency=latency,
        )


Script = Reply | Sequence[Reply] | Callable[[RecordedRequest], Reply] | None


class ScriptCursor:
    """Walks a script; not thread-safe, used only on the fake's event loop."""

    def __init__(self, script: Script, default: Reply) -> None:
        self.script = script
        self.default = default
        self.index = 0

    def next(self, request: RecordedRequest) -> Reply:
        script = self.script
        if script is None:
            return self.default
        if isinstance(script, Reply):
            return script
        if callable(script):
            return script(request)
        if self.index < len(script):
            self.index += 1
            return script[self.index - 1]
        return self.default


def lognormal(median_s: float, sigma: float = 0.5, *, seed: int | None = None, cap_s: float | None = None) -> Callable[
    [], float
]:
    """A latency distribution: log-normal with the given median, optionally capped.

    Args:
        median_s: median latency in seconds (``exp(mu)``).
        sigma: standard deviation of the log; 0.5 gives p95 ~ 2.3x the median.
        seed: seed of a private random generator, for reproducible runs.
        cap_s: largest value returned.
    """
    rng = random.Random(seed)
    mu = math.log(median_s)

    def draw() -> float:
        value = rng.lognormvariate(mu, sigma)
        return min(value, cap_s) if cap_s is not None else value

    return draw


def by_model(
    scripts: Mapping[str, Reply | Callable[[RecordedRequest], Reply]],
    default: Reply | Callable[[RecordedRequest], Reply] | None = None,
) -> Callable[[RecordedRequest], Reply]:
    """A script that answers each request by the ``model`` its body names, so one fake can serve several models.

    A model not in ``scripts`` gets ``default`` (an HTTP 404 ``not_found_error`` naming the model when there is none,
    as the real APIs answer an unknown model).
    """

    def pick(request: RecordedRequest) -> Reply:
        model = request.body.get("model") if isinstance(request.body, dict) else None
        chosen = scripts.get(str(model), default) if model is not None else default
        if chosen is None:
            return Reply.error(404, f"model: {model}", error_type="not_found_error")
        return chosen(request) if callable(chosen) else chosen

    return pick
