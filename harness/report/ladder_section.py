"""The report of a run over a ladder of named tiers: the ladder table first, then the advice per category with the
monthly projection, then each cheaper tier's drift against the reference.

Shown only for suites that name their tiers (``generation.tiers: [{name, fleet | cloud}]``); a ``tiers: [local,
cloud]`` run keeps its sections as they were. Tiers are ordered by cost, cheapest first, and each keeps one colour
across runs (:func:`tier_colour`). Untrusted strings (tier names, categories, reasons) are escaped for Markdown.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pandas as pd

from harness.analysis.labelled import human_scores
from harness.analysis.ladder import Kind, LadderAnalysis, LadderTier, analyse_ladder
from harness.analysis.tier_costs import host_costs_from_fleet
from harness.config.advice import AdviceConfig
from harness.config.fleet import HostCost
from harness.report.document import Section
from harness.report.drift_section import fmt, fmt_interval
from harness.report.escape import md_text
from harness.report.intervals import with_interval_column
from harness.report.markdown_table import table
from harness.report.tables import tier_drift
from harness.store.loaded import RunView

NONE = "—"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def is_ladder_run(view: RunView) -> bool:
    """A run whose suite names its tiers (the built-in ``local``/``cloud`` pair keeps its own sections)."""
    generation: Any = (view.suite.config or {}).get("generation")
    tiers = generation.get("tiers") if isinstance(generation, dict) else None
    return isinstance(tiers, list) and any(isinstance(t, dict) for t in tiers)


def tier_colour(name: str) -> str:
    """One colour per tier name, the same in every run (a hash of the name, not its place in this run)."""
    return PALETTE[int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(PALETTE)]


def analyse(view: RunView) -> LadderAnalysis:
    suite = view.suite.config or {}
    config = AdviceConfig.model_validate(suite["advice"]) if suite.get("advice") else AdviceConfig()
    generation = suite.get("generation") or {}
    kinds: dict[str, Kind] = {name: info.kind_of(name) for name, info in view.manifest.tiers.items()}
    hosts: dict[str, dict[str, HostCost]] = {}
    for name, info in view.manifest.tiers.items():
        if kinds[name] == "local":
            hosts[name] = host_costs_from_fleet(info.fleet if info.fleet is not None else view.manifest.fleet)
    human = human_scores(view.labels) if view.labels else None
    return analyse_ladder(view.generation, kinds, hosts, config, reference=generation.get("reference"),
                          human=human)


def sections(view: RunView) -> list[Section]:
    """The ladder table with its quality-vs-cost chart, the advice, and the drift, in that order."""
    from harness.report.document import Chart
    from harness.report.sections import from_markdown

    analysis = analyse(view)
    return [
        from_markdown(ladder_markdown(analysis, view),
                      Chart("graded score against $ per call, Pareto front dashed",
                            lambda: quality_cost_chart(analysis))),
        from_markdown(advice_markdown(analysis)),
        from_markdown(drift_markdown(analysis)),
        from_markdown(cheap_drift_markdown(analysis, view)),
    ]


def ladder_markdown(analysis: LadderAnalysis, view: RunView) -> str:
    """The ladder table: per tier, cheapest first, its graded score, $ per 1,000 calls, latency and failures."""
    lines = [
        "## Ladder of tiers",
        "",
        f"Reference: **{md_text(analysis.reference or NONE)}**. Tiers cheapest first (marginal $ per call plus the "
        "fleet's fixed cost spread over the month's calls at the configured volume).",
        "",
        "| tier | kind | model | graded score | $ per 1,000 calls | $ per call at volume | p50 s | p95 s | failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tier in analysis.tiers:
        info = view.manifest.tiers.get(tier.name)
        model = info.model if info is not None and info.model else NONE
        name = f"**{md_text(tier.name)}**" if tier.name == analysis.reference else md_text(tier.name)
        lines.append(
            f"| {name} | {tier.kind} | {md_text(model)} | {fmt_interval(tier.score)} | {_per_1k(tier)} | "
            f"{fmt(tier.usd_per_call, 6)} | {_latency(tier, 0.5)} | {_latency(tier, 0.95)} | "
            f"{tier.failed} of {tier.calls} |"
        )
    for name, info in view.manifest.tiers.items():
        if info.status != "run":
            lines.append(f"\n- {md_text(name)} did not run: {md_text(info.reason or 'no reason recorded')}")
    return "\n".join(lines) + "\n"


def _per_1k(tier: LadderTier) -> str:
    return fmt_interval(tier.cost.usd_per_1k_calls, 4) if tier.cost is not None else f"{NONE} (no fresh call)"


def _latency(tier: LadderTier, q: float) -> str:
    if tier.cost is None or q not in tier.cost.latency:
        return NONE
    return fmt(tier.cost.latency[q].estimate, 3)


def advice_markdown(analysis: LadderAnalysis) -> str:
    """Advice per category, the rule and its multiple-comparisons level, and the monthly projection."""
    lines = ["## Tiering advice over the ladder", ""]
    if analysis.missing:
        lines += [f"- {md_text(m)}" for m in analysis.missing] + [""]
    if not analysis.advice:
        lines.append("No advice: no category was answered by the reference and a cheaper tier.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Per category, the cheapest tier whose shortfall against {md_text(analysis.reference or NONE)} is within the "
        "tolerance at the upper end of its interval. Each interval is at "
        f"{analysis.interval_confidence:.4f} (Bonferroni over {analysis.comparisons} decisions: categories × cheaper "
        "tiers), so the chance of advising any tier truly beyond the tolerance is at most "
        f"{analysis.family_level:.2f}.",
        "",
        "| category | advice | why | shortfall of each cheaper tier (reference − tier) |",
        "|---|---|---|---|",
    ]
    for advice in analysis.advice:
        steps = "; ".join(f"{md_text(s.tier)} {fmt_interval(s.shortfall)}" for s in advice.steps) or NONE
        lines.append(f"| {md_text(advice.category)} | **{md_text(advice.label())}** | {md_text(advice.reason)} | "
                     f"{steps} |")
    projection = analysis.projection
    if projection is not None:
        lines += [
            "",
            f"Monthly spend at {projection.monthly_calls:,.0f} calls a month (undecided categories stay on the "
            "reference):",
            "",
            "| all on the reference | advised routing | saving | fleets used |",
            "|---|---|---|---|",
            f"| {_usd(projection.all_reference_usd)} | {_usd(projection.advised_usd)} | {_usd(projection.saving_usd)} "
            f"| {md_text(', '.join(projection.fleets_used) or NONE)} |",
        ]
        if projection.break_even_calls_per_month:
            lines += ["", "| fleet | fixed $ a month | break-even calls a month vs the reference |", "|---|---|---|"]
            for name, calls in projection.break_even_calls_per_month.items():
                tier = analysis.tier(name)
                fixed = tier.fixed_usd_per_month if tier is not None else None
                even = f"{calls:,.0f}" if calls is not None else f"{NONE} (never: no saving per call)"
                lines.append(f"| {md_text(name)} | {_usd(fixed)} | {even} |")
        lines += [f"- {md_text(m)}" for m in projection.missing]
    return "\n".join(lines) + "\n"


def _usd(value: float | None) -> str:
    return NONE if value is None else f"${value:,.2f}"


def drift_markdown(analysis: LadderAnalysis) -> str:
    """Each cheaper tier against the reference, per category: grades-only and PPI++ gaps, confident-but-wrong."""
    lines = [f"## Drift against the reference ({md_text(analysis.reference or NONE)})", ""]
    if not analysis.drift:
        lines.append("No cheaper tier was compared with the reference.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Tier − reference on the graded score, paired on cases both answered; intervals at "
        f"{analysis.interval_confidence:.4f}.",
        "",
        "| tier | category | pairs | graded pairs | grades only | PPI++ | decision figure | confident-but-wrong "
        "(tier / reference) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in analysis.drift.items():
        for row in rows:
            cbw = f"{fmt_interval(row.confident_but_wrong['local'])} / {fmt_interval(row.confident_but_wrong['cloud'])}"
            lines.append(
                f"| {md_text(name)} | {md_text(row.category)} | {row.cases} | {row.graded_pairs} | "
                f"{fmt_interval(row.gap)} | {fmt_interval(row.ppi_gap.ppi)} | {md_text(row.estimator)} | {cbw} |"
            )
    return "\n".join(lines) + "\n"


def cheap_drift_markdown(analysis: LadderAnalysis, view: RunView) -> str:
    """Each cheaper tier minus the reference on the first cheap answer metric, over every case both answered (not
    only the graded sample), per category."""
    gen = view.generation
    metric = next((name for name in view.answer_metric_names if name in gen.columns), None)
    title = "### Cheap metric against the reference"
    if metric is None or analysis.reference is None:
        return f"{title}\n\n_Not measured: the suite has no cheap answer metric, or no reference tier answered._\n"
    parts = []
    for name in analysis.drift:  # the tiers cheaper than the reference
        drift = tier_drift(gen, metric, name, analysis.reference)
        if not drift.empty:
            parts.append(drift.assign(tier=name))
    if not parts:
        return f"{title}\n\n_Not measured: no cheaper tier answered the same cases as the reference._\n"
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[["tier", *[c for c in frame.columns if c != "tier"]]].rename(
        columns={"tier_mean": "tier mean", "reference_mean": "reference mean", "gap": "tier − reference"})
    return (f"{title}\n\nTier − reference ({md_text(analysis.reference)}) on {md_text(metric)}, paired by case; "
            f"bootstrap intervals, one per comparison.\n\n{table(with_interval_column(frame), index=False)}\n")


def quality_cost_chart(analysis: LadderAnalysis) -> str | None:
    """Graded score (with its interval) against $ per call at volume, one colour per tier, the Pareto front drawn."""
    points = [t for t in analysis.tiers if t.usd_per_call is not None and t.score.estimate is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.charts import _png

    figure, axis = plt.subplots(figsize=(7, 4))
    for tier in points:
        x, y = cast(float, tier.usd_per_call), cast(float, tier.score.estimate)
        low = y - tier.score.low if tier.score.low is not None else 0.0
        high = tier.score.high - y if tier.score.high is not None else 0.0
        axis.errorbar([x], [y], yerr=[[low], [high]], fmt="o", color=tier_colour(tier.name), capsize=4,
                      label=tier.name)
    front = pareto_front([(cast(float, t.usd_per_call), cast(float, t.score.estimate), t.name) for t in points])
    axis.plot([p[0] for p in front], [p[1] for p in front], "--", color="grey", linewidth=1, label="Pareto front")
    axis.set_xlabel("$ per call at the configured volume")
    axis.set_ylabel("graded score (0–1)")
    axis.set_title("quality against cost")
    axis.legend(fontsize=8, loc="best")
    return _png(figure)


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The tiers no other beats on both cost (lower) and score (higher), cheapest first."""
    front: list[tuple[float, float, str]] = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or point[1] > front[-1][1]:
            front.append(point)
    return front
