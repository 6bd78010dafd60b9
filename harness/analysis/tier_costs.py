"""Cost and latency of each tier on the same cases: $ per 1,000 calls, $ per million tokens, latency quantiles,
the paired fleet - cloud latency delta, the local marginal cost per call, and the fleet's fixed cost.

Only calls this run made are measured (:func:`harness.store.frames.fresh_answers`): an answer replayed from the
response cache carries the latency and cost of the call that first made it, so it is left out, and a tier with
nothing but replays says so instead of showing old figures.

Local dollars come from the one cost model (:func:`harness.money.costs.local_call_cost`) as the dispatcher recorded them
(energy + amortised hardware for every busy host); the marginal part is the energy share of that figure. Pure:
frames and host cost models in, dataclasses out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.config.advice import DAYS_PER_MONTH
from harness.config.fleet import HostCost
from harness.metrics.stats.intervals import Interval, bootstrap_mean_intervals, paired_gap, quantile_interval
from harness.money.costs import fleet_fixed_usd_per_month, local_call_cost
from harness.store.frames import fresh_answers, replay_summaries

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class TierCost:
    """One tier's measured cost and latency over the successful calls this run made (replays left out)."""

    tier: str
    calls: int
    priced_calls: int  # calls with a dollar figure
    usd_per_1k_calls: Interval  # mean cost per call × 1,000, with a bootstrap interval
    usd_per_million_tokens: float | None  # total dollars / total (input + output) tokens × 1e6
    marginal_usd_per_call: float | None  # local: the energy part; cloud: the whole price
    latency: dict[float, Interval]  # quantile -> seconds
    latencies: tuple[float, ...]  # every successful call's latency, for the distribution plot


@dataclass(frozen=True)
class CostSummary:
    tiers: dict[str, TierCost]
    latency_delta: Interval  # paired local - cloud seconds on cases both answered
    fleet_fixed_usd_per_month: float
    days_per_month: float  # the month of that figure
    missing: tuple[str, ...]  # what could not be measured, and why


def summarise_costs(
    gen: pd.DataFrame,
    host_costs: dict[str, HostCost],
    *,
    confidence: float = 0.95,
    days_per_month: float = DAYS_PER_MONTH,
) -> CostSummary:
    """Cost and latency per tier from the generation frame; ``host_costs`` by host name, from the run's fleet."""
    missing: list[str] = []
    tiers: dict[str, TierCost] = {}
    ok = fresh_answers(gen)
    replays = replay_summaries(gen)
    for tier in ("local", "cloud"):
        rows = ok[ok["tier"] == tier] if not ok.empty else ok
        if tier == "local" and not rows.empty and "fallback" in rows:
            rows = rows[~rows["fallback"].astype(bool)]  # a fallback answer is a cloud call, priced as one
        if rows.empty:
            replayed = replays.get(tier)
            if replayed is not None and replayed.replayed:
                missing.append(f"{tier} tier cost and latency: {replayed.why()}")
            else:
                missing.append(f"{tier} tier: no successful call in this run, so no {tier} cost or latency")
            continue
        tiers[tier] = _tier_cost(tier, rows, host_costs, confidence)
    fixed = fleet_fixed_usd_per_month(list(host_costs.values()), days_per_month)
    if not host_costs:
        missing.append("fleet cost model: the run's fleet lists no host costs, so local dollars are 0 and unpriced")
    delta = _latency_delta(ok, confidence)
    return CostSummary(tiers, delta, fixed, days_per_month, tuple(missing))


def _tier_cost(tier: str, rows: pd.DataFrame, host_costs: dict[str, HostCost], confidence: float) -> TierCost:
    costs = rows["cost_usd"].to_numpy(float)
    priced = costs[~np.isnan(costs)]
    if priced.size >= 2:
        [(low, high, _)] = bootstrap_mean_intervals([priced], confidence=confidence, seed=0)
        per_1k = Interval(float(priced.mean()) * 1000, low * 1000, high * 1000, int(priced.size),
                          "bootstrap", confidence)
    else:
        per_1k = Interval(float(priced.mean()) * 1000 if priced.size else None, None, None, int(priced.size),
                          "bootstrap", confidence, reason="fewer than two priced calls")
    tokens = (rows["input_tokens"].fillna(0) + rows["output_tokens"].fillna(0)).to_numpy(float)
    counted = ~np.isnan(costs) & (tokens > 0)
    per_million = float(costs[counted].sum() / tokens[counted].sum() * 1e6) if counted.any() else None
    cloud_price = float(priced.mean()) if priced.size else None
    marginal = _local_marginal(rows, host_costs) if tier == "local" else cloud_price
    latencies = rows["latency_s"].dropna().to_numpy(float)
    quantiles = {q: quantile_interval(latencies, q, confidence=confidence) for q in QUANTILES}
    return TierCost(tier, len(rows), int(priced.size), per_1k, per_million, marginal, quantiles,
                    tuple(float(x) for x in latencies))


def _local_marginal(rows: pd.DataFrame, host_costs: dict[str, HostCost]) -> float | None:
    """Energy share of each local call's recorded cost, by its winning host's cost model (hosts rarely differ)."""
    shares = []
    for host, cost in zip(rows["host"], rows["cost_usd"], strict=True):
        if cost is None or np.isnan(cost):
            continue
        model = host_costs.get(str(host), HostCost())
        one_hour = local_call_cost(model, 3600.0)
        share = one_hour.energy_usd / one_hour.total_usd if one_hour.total_usd > 0 else 0.0
        shares.append(float(cost) * share)
    return float(np.mean(shares)) if shares else None


def _latency_delta(ok: pd.DataFrame, confidence: float) -> Interval:
    """Paired on cases where both tiers' answers came from calls of this run (``ok`` holds fresh answers only)."""
    if ok.empty or not {"local", "cloud"} <= set(ok["tier"]):
        return Interval(None, None, None, 0, "paired bootstrap", confidence,
                        reason="needs both tiers to answer the same cases with fresh calls (replays are not timed)")
    wide = ok.pivot_table(index=["case_id", "variant"], columns="tier", values="latency_s", aggfunc="first")
    return paired_gap(wide["local"].to_numpy(float), wide["cloud"].to_numpy(float), confidence=confidence)


def host_costs_from_fleet(fleet: dict[str, Any] | None) -> dict[str, HostCost]:
    """Host name -> cost model, from the fleet recorded in a run's manifest."""
    hosts = (fleet or {}).get("hosts", [])
    return {h["name"]: HostCost(**h.get("cost", {})) for h in hosts if "name" in h}
