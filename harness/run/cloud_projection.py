"""What a run's cloud tiers may spend, worked out before it starts, so the CLI can show it next to the budget cap."""

from __future__ import annotations

from harness.config.fleet import Fleet
from harness.config.suite import Suite
from harness.money.projection import projected_usd, request_prompt_tokens
from harness.run.tier_setup import cloud_model
from harness.run.tiers import AnswerTier, tier_kind


def planned_cloud_calls(suite: Suite, tiers: list[AnswerTier]) -> int:
    """One call per generating case and generating variant, for each cloud tier that runs."""
    generating = len(suite.generating_variants())
    return _calls_per_tier(suite) * sum(1 for t in tiers if tier_kind(t) == "cloud") if generating else 0


def _calls_per_tier(suite: Suite) -> int:
    return sum(1 for case in suite.cases if case.generate) * len(suite.generating_variants())


def projected_ladder_usd(suite: Suite, tiers: list[AnswerTier]) -> float | None:
    """The upper estimate of :func:`projected_cloud_usd`, summed over every cloud tier at its own model's prices."""
    models = [str(getattr(getattr(t, "inner", t), "model", "")) for t in tiers if tier_kind(t) == "cloud"]
    calls = _calls_per_tier(suite)
    if not models or not calls:
        return None
    total = 0.0
    for model in models:
        projected = projected_cloud_usd(suite, None, calls, model)
        total += projected or 0.0
    return total


def projected_cloud_usd(suite: Suite, fleet: Fleet | None, calls: int, model: str | None = None) -> float | None:
    """Upper estimate from list prices: ``calls`` times the cloud request of the longest question, its passages
    filling ``max_context_tokens``, ``max_tokens`` out.

    The request is built as the run builds it (the chat prompt: system text and frame), with no passages; the passages
    are added as their token budget, which the prompt never exceeds.
    """
    from harness.localfleet.prompt import build_request

    generation = suite.generation
    if generation is None or not calls:
        return None
    frames = [
        build_request(case.question, [], style="chat", max_tokens=generation.max_tokens,
                      context_tokens=generation.max_context_tokens)
        for case in suite.cases
        if case.generate
    ]
    prompt_tokens = max(request_prompt_tokens(frame) for frame in frames) + generation.max_context_tokens
    return projected_usd(cloud_model(fleet, model), prompt_tokens, generation.max_tokens, calls=calls)
