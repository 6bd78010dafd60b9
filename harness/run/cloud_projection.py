"""What a run's cloud tier may spend, worked out before it starts, so the CLI can show it next to the budget cap."""

from __future__ import annotations

from harness.config.fleet import Fleet
from harness.config.suite import Suite
from harness.money.costs import estimate_tokens, projected_cloud_cost_usd
from harness.run.tier_setup import cloud_model
from harness.run.tiers import AnswerTier


def planned_cloud_calls(suite: Suite, tiers: list[AnswerTier]) -> int:
    """One call per generating case and generating variant, when the cloud tier runs at all."""
    if not any(t.name == "cloud" for t in tiers):
        return 0
    generating = len(suite.generating_variants())
    return sum(1 for case in suite.cases if case.generate) * generating


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
