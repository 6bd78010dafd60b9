"""Money: the dated cloud pricing table, local running cost, projections and the break-even volume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from harness.config.fleet import HostCost
from harness.errors import InputError
from harness.providers.types import Usage


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


# Anthropic list prices (USD per million tokens). Dated so a report can say which table priced it; when prices change,
# add a new table rather than editing this one, so old runs stay reproducible.
PRICING_AS_OF = date(2025, 11, 24)
PRICING: dict[str, ModelPrice] = {
    "claude-opus-4-5": ModelPrice(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-1": ModelPrice(15.00, 75.00, 18.75, 1.50),
    "claude-sonnet-4-5": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00, 1.25, 0.10),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00, 1.00, 0.08),
}


def price_for(model: str) -> ModelPrice:
    """Price of a model id, accepting dated snapshots such as ``claude-sonnet-4-5-20250929``."""
    for name in sorted(PRICING, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICING[name]
    raise InputError(
        f"no price for cloud model {model!r}",
        hint=f"use one of: {', '.join(sorted(PRICING))} (pricing as of {PRICING_AS_OF.isoformat()})",
    )


def cloud_cost_usd(model: str, usage: Usage) -> float | None:
    """Dollar cost of one cloud call; None when the server reported no token counts."""
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    price = price_for(model)
    tokens = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + (usage.cache_creation_input_tokens or 0) * price.cache_write
        + (usage.cache_read_input_tokens or 0) * price.cache_read
    )
    return tokens / 1_000_000


def local_energy_usd(cost: HostCost, busy_seconds: float) -> float:
    """Marginal cost of a local call: only the energy, since the hardware is paid for whether it is used or not."""
    return busy_seconds / 3600.0 * cost.watts / 1000.0 * cost.usd_per_kwh


def projected_cloud_cost_usd(
    model: str, calls: int, input_tokens_per_call: float, output_tokens_per_call: float
) -> float:
    """Upper estimate shown before a run starts."""
    price = price_for(model)
    return calls * (input_tokens_per_call * price.input + output_tokens_per_call * price.output) / 1_000_000


def estimate_tokens(text: str) -> int:
    """Rough token count for projections (about four characters a token for English prose)."""
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class BreakEven:
    """Monthly volume above which the local fleet is cheaper than sending every call to the cloud."""

    fixed_usd_per_month: float
    local_marginal_usd_per_call: float
    cloud_usd_per_call: float
    calls_per_month: float | None  # None: local never breaks even (its marginal cost is not below the cloud's)


def break_even(fixed_usd_per_month: float, local_marginal_usd_per_call: float, cloud_usd_per_call: float) -> BreakEven:
    """Solve fixed + n·local = n·cloud for n."""
    saving = cloud_usd_per_call - local_marginal_usd_per_call
    calls = fixed_usd_per_month / saving if saving > 0 else None
    return BreakEven(fixed_usd_per_month, local_marginal_usd_per_call, cloud_usd_per_call, calls)


HOURS_PER_MONTH = 730.0


def fleet_fixed_usd_per_month(costs: list[HostCost]) -> float:
    """Hardware amortisation of all hosts for a month; power is charged per call as marginal cost."""
    return sum(c.hardware_usd_per_hour for c in costs) * HOURS_PER_MONTH
