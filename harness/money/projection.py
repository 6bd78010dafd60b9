"""The one cost projection: the most a cloud call can cost, reserved before the call and shown before a run.

Every projected dollar figure goes through :func:`projected_usd`: the cloud tier's reservation per answer and its
figure before the run, the dispatcher's cloud fallback, the grader's reservation per grade and the grading figure
before the run. Callers count prompts with :func:`harness.money.tokens.estimate_tokens`, which over-counts, and pass
``max_tokens`` as the output (a reply can be shorter, never longer), so a projection is an upper estimate: the
budget's reserve-then-settle relies on that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.money.costs import MILLION, CacheTTL, call_rates
from harness.money.tokens import estimate_tokens

if TYPE_CHECKING:  # types only: money sits below providers, which price their calls through it
    from harness.providers.types import GenerationRequest

__all__ = ["projected_usd", "request_prompt_tokens"]


def projected_usd(
    model: str, prompt_tokens: int, max_output_tokens: int, *,
    cache_write_tokens: int = 0, calls: int = 1, batch: bool = False, cache_ttl: CacheTTL = "5m",
) -> float:
    """Upper estimate of ``calls`` calls, at the rates :func:`harness.money.costs.call_rates` picks.

    Each call sends ``prompt_tokens`` at the input rate plus ``cache_write_tokens`` (a prefix marked for the prompt
    cache) at the cache-write rate, the dearest case for a cached prefix, and gets ``max_output_tokens`` back.
    """
    if min(prompt_tokens, max_output_tokens, cache_write_tokens, calls) < 0:
        raise ValueError("token counts and calls of a projection must be >= 0")
    rates = call_rates(model, prompt_tokens + cache_write_tokens, batch=batch, cache_ttl=cache_ttl)
    per_call = prompt_tokens * rates.input + cache_write_tokens * rates.cache_write + max_output_tokens * rates.output
    return calls * per_call / MILLION


def request_prompt_tokens(request: GenerationRequest) -> int:
    """Estimated prompt tokens of one answer request: its system text and its prompt, counted as sent (apart)."""
    return estimate_tokens(request.system or "") + estimate_tokens(request.prompt)
