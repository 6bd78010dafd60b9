"""Drift and advice over a ladder of tiers: every tier against the reference, and per category the cheapest tier that
is good enough.

**Drift.** For each tier cheaper than the reference, the pair (tier, reference) goes through the same machinery as
local vs cloud (:func:`harness.analysis.drift.drift_rows`): paired on the cases both answered, per category, with the
grades-only and PPI++ intervals, the confident-but-wrong rates and, with people's labels, the two-stage correction.
The gap is tier - reference.

**Cost and order.** A tier's cost per call at the configured volume is its marginal $ per call (cloud: the measured
price from the pricing table; a fleet: the energy share of its hosts' cost model) plus its fleet's fixed cost spread
over the month's calls. Tiers are ordered by it, cheapest first; the reference is the suite's ``reference:``, else
the costliest tier that answered.

**Advice.** Per category, the cheaper tiers are read cheapest first with the rule of :func:`harness.analysis.advice
.decide` on the shortfall (reference - tier): the first tier whose shortfall is within the tolerance at the upper end
of its interval is advised. A tier clearly beyond it is passed over. When a cheaper tier straddles the tolerance
before any adequate one, the category is "undecided between that tier and the next adequate one (or the reference):
grade N more". When no cheaper tier is adequate, the category stays on the reference.

**Multiple comparisons.** One run makes m = categories × cheaper tiers decisions. Each interval is computed at level
1 - α/m (Bonferroni), with α = 1 - ``advice.confidence``. A tier truly beyond the tolerance is advised only if its
interval's upper end falls below the true shortfall, which has chance at most α/(2m) for each decision, so the
chance of advising any such tier in any category is at most α/2 ≤ α (``tests/test_ladder_advice.py`` checks this by
simulation). The price is wider intervals, so more categories stay undecided than with one comparison.

Pure: frames and cost models in, dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from harness.analysis.advice import Decision, decide, shortfall_of
from harness.analysis.drift import DriftRow, drift_rows
from harness.analysis.tier_costs import TierCost, summarise_costs
from harness.config.advice import AdviceConfig
from harness.config.fleet import HostCost
from harness.metrics.stats.intervals import Interval, bootstrap_mean_intervals
from harness.money.costs import break_even, fleet_fixed_usd_per_month

Kind = Literal["local", "cloud"]
LadderVerdict = Literal["tier", "reference", "undecided"]


@dataclass(frozen=True)
class LadderTier:
    """One tier on the ladder: what it costs, how it scored, and how its calls ended."""

    name: str
    kind: Kind
    cost: TierCost | None  # measured cost and latency of this run's fresh calls; None when it made none
    marginal_usd_per_call: float | None
    fixed_usd_per_month: float  # a fleet's hardware; 0 for a cloud tier
    usd_per_call: float | None  # marginal + fixed / monthly calls: the order of the ladder
    score: Interval  # mean graded score over its graded answers
    calls: int
    failed: int


@dataclass(frozen=True)
class Step:
    """One cheaper tier's reading in one category."""

    tier: str
    shortfall: Interval  # reference - tier
    decision: Decision


@dataclass(frozen=True)
class LadderAdvice:
    category: str
    verdict: LadderVerdict
    tier: str  # the advised tier (the reference's name when it stays on the reference or is undecided)
    between: tuple[str, str] | None  # undecided: the straddling tier and the next adequate one (or the reference)
    more_cases: int | None  # undecided: graded pairs to add, when a number can be given
    reason: str
    steps: tuple[Step, ...]
    calls_per_day: float

    def label(self) -> str:
        if self.verdict == "undecided" and self.between is not None:
            more = f"grade {self.more_cases} more" if self.more_cases is not None else "grade more"
            return f"undecided between {self.between[0]} and {self.between[1]}: {more}"
        return self.tier


@dataclass(frozen=True)
class LadderProjection:
    """Monthly spend at the configured volume."""

    monthly_calls: float
    all_reference_usd: float | None
    advised_usd: float | None  # advised tiers' marginal spend + the fixed cost of every fleet the routing uses
    saving_usd: float | None
    fleets_used: tuple[str, ...]
    break_even_calls_per_month: dict[str, float | None]  # fleet tier -> calls a month where it pays for itself
    missing: tuple[str, ...]


@dataclass(frozen=True)
class LadderAnalysis:
    reference: str | None
    tiers: list[LadderTier]  # cheapest first
    drift: dict[str, list[DriftRow]]  # cheaper tier -> rows (tier - reference), categories then ``all``
    advice: list[LadderAdvice]
    projection: LadderProjection | None
    family_level: float  # α: the chance of advising any tier truly beyond the tolerance is at most this
    comparisons: int  # m
    interval_confidence: float  # 1 - α/m
    missing: tuple[str, ...] = field(default_factory=tuple)

    def tier(self, name: str) -> LadderTier | None:
        return next((t for t in self.tiers if t.name == name), None)


def bonferroni_confidence(confidence: float, comparisons: int) -> float:
    """The level of each of ``comparisons`` intervals so the family errs with chance at most 1 - ``confidence``."""
    return 1.0 - (1.0 - confidence) / max(1, comparisons)


def analyse_ladder(
    gen: pd.DataFrame,
    kinds: dict[str, Kind],
    host_costs: dict[str, dict[str, HostCost]],
    config: AdviceConfig,
    *,
    reference: str | None = None,
    human: pd.DataFrame | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    bonferroni: bool = True,
) -> LadderAnalysis:
    """The whole ladder analysis of one run's generation frame.

    Args:
        gen: the generation frame (one row per case × variant × tier).
        kinds: tier name -> ``local`` (a fleet) or ``cloud`` (a Claude model), for every tier the run asked for.
        host_costs: fleet tier name -> host name -> cost model.
        config: the suite's ``advice:`` section (tolerance, confidence = 1 - α, volume).
        reference: the suite's ``reference:``; None: the costliest tier that answered.
        bonferroni: False reads each interval at ``config.confidence`` alone (to show what the correction buys).
    """
    cases = gen.drop_duplicates(["case_id"]).groupby("category").size().to_dict() if not gen.empty else {}
    volume = config.daily_volume({str(k): int(v) for k, v in cases.items()})
    monthly = sum(volume.values()) * config.days_per_month
    tiers = [_ladder_tier(gen, name, kind, host_costs.get(name, {}), config.confidence, monthly)
             for name, kind in kinds.items()]
    tiers.sort(key=lambda t: (t.usd_per_call is None, t.usd_per_call or 0.0, t.name))
    answered = [t for t in tiers if t.score.n or t.calls]
    missing: list[str] = []
    chosen = reference if reference is not None else _costliest(answered)
    alpha = 1.0 - config.confidence
    if chosen is None or all(t.name != chosen for t in answered):
        why = f"the reference tier {chosen} answered nothing" if chosen else "no tier answered"
        return LadderAnalysis(chosen, tiers, {}, [], None, alpha, 0, config.confidence, (why,))
    ref = next(t for t in tiers if t.name == chosen)
    ref_index = tiers.index(ref)
    cheaper = [t for t in tiers[:ref_index] if t.usd_per_call is not None]
    if ref.usd_per_call is None:
        missing.append(f"the reference {chosen} has no measured cost, so no tier can be shown cheaper than it")
        cheaper = []
    categories = sorted(volume)
    m = max(1, len(categories) * len(cheaper))
    level = bonferroni_confidence(config.confidence, m) if bonferroni else config.confidence
    drift = {
        t.name: drift_rows(_as_pair(gen, t.name, chosen), None if human is None else _as_pair(human, t.name, chosen),
                           confidence=level, n_resamples=n_resamples, seed=seed)
        for t in cheaper
    }
    advice = [_advise(c, cheaper, drift, chosen, config.tolerance, volume.get(c, 0.0)) for c in categories]
    projection = _project(tiers, ref, advice, volume, config)
    return LadderAnalysis(chosen, tiers, drift, advice, projection, alpha, m, level, tuple(missing))


def _costliest(tiers: list[LadderTier]) -> str | None:
    priced = [t for t in tiers if t.usd_per_call is not None]
    return priced[-1].name if priced else (tiers[-1].name if tiers else None)


def _as_pair(frame: pd.DataFrame | None, tier: str, reference: str) -> pd.DataFrame:
    """The rows of ``tier`` and ``reference`` relabelled local and cloud, the pair drift's machinery reads."""
    if frame is None or frame.empty:
        return pd.DataFrame() if frame is None else frame
    part = frame[frame["tier"].isin([tier, reference])].copy()
    part["tier"] = part["tier"].map({tier: "local", reference: "cloud"})
    return part


def _ladder_tier(gen: pd.DataFrame, name: str, kind: Kind, hosts: dict[str, HostCost], confidence: float,
                 monthly_calls: float) -> LadderTier:
    rows = gen[gen["tier"] == name] if not gen.empty else gen
    cost: TierCost | None = None
    if not rows.empty:
        # A fleet tier's cloud fallback is dropped by the "local" summary, which prices it as the fallback it was.
        summary = summarise_costs(rows.assign(tier=kind), hosts, confidence=confidence)
        cost = summary.tiers.get(kind)
    marginal = cost.marginal_usd_per_call if cost is not None else None
    if kind == "local" and cost is not None and marginal is None:
        marginal = 0.0  # calls made, but the fleet lists no cost model: its calls are free at the margin
    fixed = fleet_fixed_usd_per_month(list(hosts.values())) if kind == "local" else 0.0
    per_call = None if marginal is None else marginal + (fixed / monthly_calls if monthly_calls > 0 else 0.0)
    calls = int((rows["status"] != "skipped").sum()) if not rows.empty else 0
    failed = int((rows["status"] == "failed").sum()) if not rows.empty else 0
    return LadderTier(name, kind, cost, marginal, fixed, per_call, _score(rows, confidence), calls, failed)


def _score(rows: pd.DataFrame, confidence: float) -> Interval:
    if rows.empty:
        return Interval(None, None, None, 0, "bootstrap", confidence, reason="no answer")
    graded = rows[(rows["status"] == "ok") & (rows["grade_status"] == "graded")]["grade_score"].dropna()
    values = graded.to_numpy(float)
    if values.size < 2:
        reason = "no graded answer" if values.size == 0 else "one graded answer"
        return Interval(float(values.mean()) if values.size else None, None, None, int(values.size), "bootstrap",
                        confidence, reason=reason)
    [(low, high, sd)] = bootstrap_mean_intervals([values], confidence=confidence, seed=0)
    return Interval(float(values.mean()), low, high, int(values.size), "bootstrap", confidence, se=sd)


def _row(rows: list[DriftRow], category: str) -> DriftRow | None:
    return next((r for r in rows if r.category == category), None)


def _advise(category: str, cheaper: list[LadderTier], drift: dict[str, list[DriftRow]], reference: str,
            tolerance: float, per_day: float) -> LadderAdvice:
    steps: list[Step] = []
    straddling: Step | None = None
    for tier in cheaper:
        row = _row(drift[tier.name], category)
        if row is None:
            shortfall = Interval(None, None, None, 0, "paired", reason=f"no case answered by both {tier.name} "
                                 f"and {reference}")
            decision = Decision("undecided", None, shortfall.reason or "")
        else:
            shortfall = shortfall_of(row.decision_gap)
            decision = decide(shortfall, tolerance)
        step = Step(tier.name, shortfall, decision)
        steps.append(step)
        if decision.verdict == "local":  # adequate: within the tolerance at the upper end of its interval
            if straddling is not None:
                return _undecided(category, straddling, tier.name, reference, steps, per_day)
            return LadderAdvice(category, "tier", tier.name, None, None, decision.reason, tuple(steps), per_day)
        if decision.verdict == "undecided" and straddling is None:
            straddling = step
    if straddling is not None:
        return _undecided(category, straddling, reference, reference, steps, per_day)
    reason = "no cheaper tier is within the tolerance" if steps else "no tier is cheaper than the reference"
    return LadderAdvice(category, "reference", reference, None, None, reason, tuple(steps), per_day)


def _undecided(category: str, straddling: Step, other: str, reference: str, steps: list[Step],
               per_day: float) -> LadderAdvice:
    return LadderAdvice(category, "undecided", reference, (straddling.tier, other), straddling.decision.more_cases,
                        f"{straddling.tier}: {straddling.decision.reason}", tuple(steps), per_day)


def _project(tiers: list[LadderTier], ref: LadderTier, advice: list[LadderAdvice], volume: dict[str, float],
             config: AdviceConfig) -> LadderProjection:
    """All-reference spend, the advised routing's spend (undecided categories stay on the reference), the saving, and
    each fleet's break-even volume against the reference."""
    by_name = {t.name: t for t in tiers}
    monthly = sum(volume.values()) * config.days_per_month
    missing: list[str] = []
    if ref.marginal_usd_per_call is None:
        missing.append(f"the reference {ref.name} made no priced call, so no spend, saving or break-even")
    routed = {a.category: (a.tier if a.verdict == "tier" else ref.name) for a in advice}
    used = sorted({name for name in routed.values() if by_name[name].kind == "local"} |
                  ({ref.name} if ref.kind == "local" else set()))
    all_ref = None
    advised = None
    if ref.marginal_usd_per_call is not None:
        all_ref = monthly * ref.marginal_usd_per_call + ref.fixed_usd_per_month
        spend = 0.0
        for category, per_day in volume.items():
            marginal = by_name[routed.get(category, ref.name)].marginal_usd_per_call
            spend += per_day * config.days_per_month * (marginal if marginal is not None else math.nan)
        advised = spend + sum(by_name[name].fixed_usd_per_month for name in used)
        if np.isnan(advised):
            missing.append("an advised tier has no priced call, so the advised spend is unknown")
            advised = None
    evens: dict[str, float | None] = {}
    for tier in tiers:
        if tier.kind == "local" and tier.name != ref.name:
            if tier.marginal_usd_per_call is None or ref.marginal_usd_per_call is None:
                evens[tier.name] = None
            else:
                evens[tier.name] = break_even(tier.fixed_usd_per_month, tier.marginal_usd_per_call,
                                              ref.marginal_usd_per_call).calls_per_month
    saving = all_ref - advised if all_ref is not None and advised is not None else None
    return LadderProjection(monthly, all_ref, advised, saving, tuple(used), evens, tuple(missing))


__all__ = ["LadderAdvice", "LadderAnalysis", "LadderProjection", "LadderTier", "Step", "analyse_ladder",
           "bonferroni_confidence"]
