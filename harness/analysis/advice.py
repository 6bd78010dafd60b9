"""Tiering advice: which tier each category should go to, what that saves a month, and what quality it gives up.

The rule reads the interval of the shortfall s = cloud - local (the negated drift gap) against the tolerance t:

- **local** when the upper end of the shortfall's interval is within the tolerance (high <= t);
- **cloud** when its lower end is beyond the tolerance (low > t);
- otherwise **undecided**: grade N more cases, where N is the sample at which the interval, shrinking as
  1/sqrt(n) from its present standard error, would no longer straddle t: n_needed = n × (z × se / |s - t|)².

Pure: drift rows and a cost summary in, dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats as sps

from harness.analysis.drift import DriftRow
from harness.analysis.tier_costs import CostSummary
from harness.config.advice import AdviceConfig
from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.stats.intervals import MIN_CASES, Interval
from harness.money.costs import break_even

Verdict = Literal["local", "cloud", "undecided"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    more_cases: int | None  # undecided: graded pairs to add; None when no number can be given
    reason: str


def shortfall_of(gap: Interval) -> Interval:
    """cloud - local from a local - cloud interval (sign flipped, ends swapped)."""
    def neg(x: float | None) -> float | None:
        return None if x is None else -x

    return Interval(neg(gap.estimate), neg(gap.high), neg(gap.low), gap.n, gap.method, gap.confidence, gap.se,
                    gap.df, gap.reason)


def decide(shortfall: Interval, tolerance: float) -> Decision:
    """The rule in the module docstring, for one interval of the shortfall."""
    if shortfall.estimate is None:
        return Decision("undecided", None, shortfall.reason or "no graded pair")
    if not shortfall.has_interval:
        more = max(1, MIN_CASES - shortfall.n)
        return Decision("undecided", more, f"{shortfall.reason}; grade at least {more} more to get an interval")
    assert shortfall.low is not None and shortfall.high is not None
    if shortfall.high <= tolerance:
        return Decision("local", None, f"shortfall at most {shortfall.high:.3f} ≤ tolerance {tolerance:.3f}")
    if shortfall.low > tolerance:
        return Decision("cloud", None, f"shortfall at least {shortfall.low:.3f} > tolerance {tolerance:.3f}")
    distance = abs(shortfall.estimate - tolerance)
    if shortfall.se is None or shortfall.se == 0 or distance == 0:
        return Decision("undecided", None, "the estimate sits on the tolerance; more cases may not settle it")
    z = float(sps.norm.ppf(0.5 + shortfall.confidence / 2.0))
    needed = shortfall.n * (z * shortfall.se / distance) ** 2
    more = max(1, math.ceil(needed - shortfall.n))
    return Decision("undecided", more, f"interval straddles the tolerance {tolerance:.3f}; grade about {more} more")


@dataclass(frozen=True)
class CategoryAdvice:
    category: str
    decision: Decision
    shortfall: Interval  # cloud - local, as the decision read it
    calls_per_day: float
    saving_usd_per_month: float | None  # local advised: cloud spend avoided minus local marginal spend


@dataclass(frozen=True)
class Projection:
    """Monthly spend at the configured volume."""

    all_cloud_usd: float | None
    advised_split_usd: float | None  # cloud for cloud/undecided categories + local marginal + the fleet's fixed cost
    fleet_fixed_usd: float
    break_even_calls_per_month: float | None
    monthly_calls: float
    missing: tuple[str, ...]


def tiering_advice(
    rows: list[DriftRow], costs: CostSummary, config: AdviceConfig, cases_by_category: dict[str, int]
) -> tuple[list[CategoryAdvice], Projection]:
    """Advice per category (the all-categories row excluded) and the monthly projection.

    ``costs`` must be summarised over the advice's month (``summarise_costs(days_per_month=config.days_per_month)``):
    the fleet's fixed cost a month and the calls a month are then one month.
    """
    if costs.days_per_month != config.days_per_month:
        raise ValueError(
            f"costs are summarised over a {costs.days_per_month:g}-day month, the advice over {config.days_per_month:g}"
        )
    volume = config.daily_volume(cases_by_category)
    cloud = costs.tiers.get("cloud")
    local = costs.tiers.get("local")
    cloud_call = cloud.marginal_usd_per_call if cloud else None
    local_call = local.marginal_usd_per_call if local else None
    if local_call is None and local is not None:
        local_call = 0.0
    missing: list[str] = []
    if cloud_call is None:
        missing.append("no priced cloud call in this run, so no cloud spend, saving or break-even")
    if local is None:
        missing.append("no local call in this run, so no local cost")
    advice = []
    for row in rows:
        if row.category == ALL_CATEGORIES:
            continue
        shortfall = shortfall_of(row.decision_gap)
        decision = decide(shortfall, config.tolerance)
        per_day = volume.get(row.category, 0.0)
        saving = None
        if decision.verdict == "local" and cloud_call is not None and local_call is not None:
            saving = per_day * config.days_per_month * (cloud_call - local_call)
        advice.append(CategoryAdvice(row.category, decision, shortfall, per_day, saving))
    monthly_calls = sum(volume.values()) * config.days_per_month
    all_cloud = monthly_calls * cloud_call if cloud_call is not None else None
    split = None
    if cloud_call is not None and local_call is not None:
        routed = {a.category: a.decision.verdict for a in advice}
        split = costs.fleet_fixed_usd_per_month + sum(
            per_day * config.days_per_month * (local_call if routed.get(c) == "local" else cloud_call)
            for c, per_day in volume.items()
        )
    even = None
    if cloud_call is not None and local_call is not None:
        even = break_even(costs.fleet_fixed_usd_per_month, local_call, cloud_call).calls_per_month
    projection = Projection(all_cloud, split, costs.fleet_fixed_usd_per_month, even, monthly_calls, tuple(missing))
    return advice, projection
