"""The two answering tiers as the runner sees them: each turns (question, context) into a Generation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Protocol

from harness.config.fleet import Fleet
from harness.costs import cloud_cost_usd, estimate_tokens, local_cost_usd, price_for
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
    """The fleet behind the dispatcher. Local calls are priced from the winning host's cost model; a deliberate
    fallback to the cloud is priced from the pricing table and charged to the run's budget."""

    dispatcher: object  # harness.dispatch.Dispatcher; typed loosely so run/ does not import every provider
    fleet: Fleet
    budget: Budget
    name: Tier = "local"

    async def answer(self, request: GenerationRequest) -> Generation:
        generation: Generation = await self.dispatcher.generate(request)  # type: ignore[attr-defined]
        if generation.cost_usd is not None:
            if generation.tier == "cloud":
                self.budget.charge(generation.cost_usd)
            return generation
        if generation.tier == "cloud":
            cost = cloud_cost_usd(generation.model, generation.usage)
            self.budget.charge(cost)
            return replace(generation, cost_usd=cost)
        host_cost = self.fleet.host(generation.host).cost
        return replace(generation, cost_usd=local_cost_usd(host_cost, generation.latency_s))

    async def aclose(self) -> None:
        await self.dispatcher.aclose()  # type: ignore[attr-defined]


@dataclass
class CloudTier:
    """Claude through the official SDK, priced per call and held to the run's budget."""

    provider: object  # harness.providers.anthropic_cloud.AnthropicProvider
    model: str
    budget: Budget
    name: Tier = "cloud"
    calls: int = field(default=0)

    async def answer(self, request: GenerationRequest) -> Generation:
        projected = _projected_usd(self.model, request)
        if not self.budget.allows(projected):
            raise BudgetExceeded(
                f"cloud budget of ${self.budget.cap_usd:.2f} reached (spent ${self.budget.spent_usd:.4f})",
                hint="raise --budget to answer the remaining cases on the cloud tier",
            )
        generation: Generation = await self.provider.generate(request)  # type: ignore[attr-defined]
        cost = cloud_cost_usd(self.model, generation.usage)
        self.budget.charge(cost)
        self.calls += 1
        return _with_cost(generation, cost)

    async def aclose(self) -> None:
        await self.provider.aclose()  # type: ignore[attr-defined]


def _projected_usd(model: str, request: GenerationRequest) -> float:
    price = price_for(model)
    prompt_tokens = estimate_tokens((request.system or "") + request.prompt)
    return (prompt_tokens * price.input + request.max_tokens * price.output) / 1_000_000


def _with_cost(generation: Generation, cost: float | None) -> Generation:
    return replace(generation, cost_usd=cost)


def cloud_key_present() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY", "").strip())
