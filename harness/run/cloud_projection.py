"""What a run's cloud tiers may spend, worked out before it starts, so the CLI can show it next to the budget cap."""

from __future__ import annotations

from harness.config.fleet import Fleet
from harness.config.suite import Suite
from harness.money.costs import estimate_tokens, projected_cloud_cost_usd
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
    """Upper estimate from list prices: a full context, the longest question, the prompt's own text, max_tokens."""
    generation = suite.generation
    if generation is None or not calls:
        return None
    questions = [case.question for case in suite.cases if case.generate]
    prompt_tokens = (
        generation.max_context_tokens + max(estimate_tokens(q) for q in questions) + 150
    )
    return projected_cloud_cost_usd(cloud_model(fleet, model), calls, prompt_tokens, generation.max_tokens)
