"""The two answering tiers as the runner sees them: each turns (question, context) into a Generation."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Protocol

from harness.costs import cloud_cost_usd, estimate_tokens, projected_cloud_cost_usd
from harness.errors import BudgetExceeded
from harness.providers.types import Generation, GenerationRequest, Tier


@dataclass
class Budget:
    """Dollars the run may still spend on cloud calls. Shared by the cloud tier and the dispatcher's fallback."""

    cap_usd: float | None
    spent_usd: float = 0.0

    def allows(self, projected_usd: float) -> bool:
        return self.cap_usd is None or self.spent_usd + projected_usd <= self.cap_usd

    def charge(self, usd: float | None) -> None:
        self.spent_usd += usd or 0.0


class AnswerTier(Protocol):
    name: Tier

    async def answer(self, request: GenerationRequest) -> Generation: ...

    async def aclose(self) -> None: ...


@dataclass
class SkippedTier:
    """A tier that will not run, and the plain reason why (shown in the report instead of any figure)."""

    name: Tier
    reason: str


@dataclass
class LocalTier:
    """The fleet behind the dispatcher, which prices local calls from the hosts' cost models. A deliberate fallback
    to the cloud is charged to the run's budget."""

    dispatcher: object  # harness.dispatch.Dispatcher; typed loosely so run/ does not import every provider
    budget: Budget
    name: Tier = "local"

    async def answer(self, request: GenerationRequest) -> Generation:
        generation: Generation = await self.dispatcher.generate(request)  # type: ignore[attr-defined]
        if generation.tier != "cloud":
            return generation
        if generation.cost_usd is None:
            generation = replace(generation, cost_usd=cloud_cost_usd(generation.model, generation.usage))
        self.budget.charge(generation.cost_usd)
        return generation

    async def aclose(self) -> None:
        await self.dispatcher.aclose()  # type: ignore[attr-defined]


@dataclass
class CloudTier:
    """Claude through the official SDK, priced per call and held to the run's budget."""

    provider: object  # harness.providers.anthropic_cloud.AnthropicProvider
    model: str
    budget: Budget
    name: Tier = "cloud"

    async def answer(self, request: GenerationRequest) -> Generation:
        prompt_tokens = estimate_tokens((request.system or "") + request.prompt)
        projected = projected_cloud_cost_usd(self.model, 1, prompt_tokens, request.max_tokens)
        if not self.budget.allows(projected):
            raise BudgetExceeded(
                f"cloud budget of ${self.budget.cap_usd:.2f} reached (spent ${self.budget.spent_usd:.4f})",
                hint="raise --budget to answer the remaining cases on the cloud tier",
            )
        generation: Generation = await self.provider.generate(request)  # type: ignore[attr-defined]
        cost = cloud_cost_usd(self.model, generation.usage)
        self.budget.charge(cost)
        return replace(generation, cost_usd=cost)

    async def aclose(self) -> None:
        await self.provider.aclose()  # type: ignore[attr-defined]


def cloud_key_present() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY", "").strip())
