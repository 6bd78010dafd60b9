"""The answering tiers as the runner sees them: each turns (question, context) into a Generation.

A tier has a name (``local``, ``cloud``, or a suite's named tier such as ``fleet-8b`` or ``haiku``) and a kind: a
fleet behind its own dispatcher, or a Claude model.

``Budget`` is re-exported from ``harness.money.budget``: one budget class for every cloud call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from harness.config.fleet import Fleet
from harness.money.budget import Budget
from harness.money.costs import cloud_cost_usd
from harness.money.projection import projected_usd, request_prompt_tokens
from harness.providers.anthropic_key import anthropic_api_key
from harness.providers.types import Generation, GenerationRequest, Tier

__all__ = ["AnswerTier", "Budget", "CloudTier", "LocalTier", "SkippedTier", "cloud_key_present", "tier_kind"]


class AnswerTier(Protocol):
    name: str
    kind: Tier

    async def answer(self, request: GenerationRequest) -> Generation: ...

    async def aclose(self) -> None: ...


@dataclass
class SkippedTier:
    """A tier that will not run, and the plain reason why (shown in the report instead of any figure)."""

    name: str
    reason: str


@dataclass
class LocalTier:
    """The fleet behind the dispatcher, which prices local calls from the hosts' cost models. A deliberate fallback
    to the cloud reserves and settles on the dispatcher's budget, which a run builds inside its own."""

    dispatcher: object  # harness.dispatch.Dispatcher; typed loosely so run/ does not import every provider
    name: str = "local"
    fleet: Fleet | None = None  # what the dispatcher serves, for the response cache's key
    kind: Tier = "local"

    async def answer(self, request: GenerationRequest) -> Generation:
        generation: Generation = await self.dispatcher.generate(request)  # type: ignore[attr-defined]
        if generation.tier == "cloud" and generation.cost_usd is None:
            generation = replace(generation, cost_usd=cloud_cost_usd(generation.model, generation.usage))
        return generation

    async def aclose(self) -> None:
        await self.dispatcher.aclose()  # type: ignore[attr-defined]


@dataclass
class CloudTier:
    """Claude through the official SDK, priced per call and held to the run's budget."""

    provider: object  # harness.providers.anthropic_cloud.AnthropicProvider
    model: str
    budget: Budget
    name: str = "cloud"
    kind: Tier = "cloud"

    async def answer(self, request: GenerationRequest) -> Generation:
        """Reserve the projected cost (BudgetExceeded when the cap cannot hold it), call, settle to the real cost."""
        projected = projected_usd(self.model, request_prompt_tokens(request), request.max_tokens)
        reservation = self.budget.reserve(projected, "cloud answer")
        try:
            generation: Generation = await self.provider.generate(request)  # type: ignore[attr-defined]
        except BaseException:
            self.budget.release(reservation)  # the API bills no failed request
            raise
        cost = cloud_cost_usd(self.model, generation.usage)
        self.budget.settle(reservation, cost)
        return replace(generation, cost_usd=cost)

    async def aclose(self) -> None:
        await self.provider.aclose()  # type: ignore[attr-defined]


def tier_kind(tier: object) -> Tier:
    """A tier's kind; a tier object without one is the built-in tier its name says (``cloud``, else ``local``)."""
    kind = getattr(tier, "kind", None)
    if kind == "local":
        return "local"
    if kind == "cloud":
        return "cloud"
    return "cloud" if getattr(tier, "name", None) == "cloud" else "local"


def cloud_key_present() -> bool:
    return anthropic_api_key() is not None
