"""The report's tiering advice (at the top), drift table, and cost, latency and break-even sections.

Every figure has its interval and n, or says why it has none; a section with nothing measured says what is missing.
Untrusted strings (categories, reasons) are escaped for Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.analysis.advice import CategoryAdvice, Projection, tiering_advice
from harness.analysis.drift import DriftRow, drift_rows
from harness.analysis.labelled import human_scores
from harness.analysis.tier_costs import QUANTILES, CostSummary, host_costs_from_fleet, summarise_costs
from harness.config.advice import AdviceConfig
from harness.metrics.stats.intervals import Interval
from harness.report.attribution_section import advice_pointers, run_attribution
from harness.report.escape import md_text
from harness.store.loaded import RunView

NONE = "—"


@dataclass(frozen=True)
class DriftAnalysis:
    """Everything the drift sections show, computed once per report."""

    config: AdviceConfig
    rows: list[DriftRow]
    costs: CostSummary
    advice: list[CategoryAdvice]
    projection: Projection
    missing: tuple[str, ...]  # why whole sections are empty
    pointers: dict[str, str] = field(default_factory=dict)  # category -> where the fix for local's shortfalls lies


def analyse(view: RunView) -> DriftAnalysis:
    config = _advice_config(view)
    gen = view.generation
    human = human_scores(view.labels) if view.labels else None
    rows = drift_rows(gen, human, confidence=config.confidence) if not gen.empty else []
    costs = summarise_costs(gen, host_costs_from_fleet(view.manifest.fleet), confidence=config.confidence,
                            days_per_month=config.days_per_month)
    cases = gen.drop_duplicates(["case_id"]).groupby("category").size().to_dict() if not gen.empty else {}
    advice, projection = tiering_advice(rows, costs, config, {str(k): int(v) for k, v in cases.items()})
    pointers = advice_pointers(run_attribution(view, config.confidence)) if not gen.empty else {}
    return DriftAnalysis(config, rows, costs, advice, projection, _missing(view, rows), pointers)


def _advice_config(view: RunView) -> AdviceConfig:
    section = (view.suite.config or {}).get("advice")
    return AdviceConfig.model_validate(section) if section else AdviceConfig()


def _missing(view: RunView, rows: list[DriftRow]) -> tuple[str, ...]:
    out = []
    for tier, info in view.manifest.tiers.items():
        if info.status != "run":
            out.append(f"the {tier} tier did not run ({info.reason})")
    if view.generation.empty:
        out.append("the suite generates no answers")
    elif not rows:
        out.append("no case was answered by both tiers")
    elif not any(row.graded_pairs for row in rows):
        out.append("no case was graded on both tiers, so there is no graded gap")
    return tuple(out)


def fmt(value: float | None, digits: int = 3) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def fmt_interval(interval: Interval, digits: int = 3, scale: float = 1.0) -> str:
    """``0.050 [0.010, 0.090] n=40``, or the estimate with the reason it has no interval."""
    if interval.estimate is None:
        return f"{NONE} ({md_text(interval.reason or 'not measured')})"
    def number(x: float) -> str:
        return f"{round(x * scale, digits) + 0.0:.{digits}f}"  # + 0.0 turns a rounded -0.0 into 0.0

    estimate = number(interval.estimate)
    if not interval.has_interval:
        return f"{estimate} (n={interval.n}; {md_text(interval.reason or 'no interval')})"
    assert interval.low is not None and interval.high is not None
    return f"{estimate} [{number(interval.low)}, {number(interval.high)}] n={interval.n}"


def advice_markdown(analysis: DriftAnalysis) -> str:
    """The decision the two-tier set-up exists to make, first in the report."""
    config = analysis.config
    parts = [
        "## Tiering advice\n",
        f"Tolerance: the local tier may score at most {config.tolerance:.3f} below the cloud on the 0–1 graded score "
        f"(the upper end of the {config.confidence:.0%} interval of the shortfall, cloud − local). Volume: "
        f"{analysis.projection.monthly_calls:,.0f} calls a month.\n",
    ]
    if not analysis.advice:
        reasons = "; ".join(analysis.missing) or "nothing to compare"
        parts.append(f"_No advice: {md_text(reasons)}. No figure is shown rather than one invented._\n")
        return "\n".join(parts) + _projection_lines(analysis.projection)
    header = ("| category | advice | shortfall cloud − local | interval from | calls/day | saved/month | why "
              "| where the fix lies (local) |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    lines = [header]
    estimators = {row.category: row.estimator for row in analysis.rows}
    for item in analysis.advice:
        decision = item.decision
        verdict = {"local": "**local**", "cloud": "**cloud**"}.get(decision.verdict, "undecided")
        if decision.verdict == "undecided" and decision.more_cases is not None:
            verdict = f"undecided: grade {decision.more_cases} more"
        saving = NONE if item.saving_usd_per_month is None else f"${item.saving_usd_per_month:,.2f}"
        lines.append(
            f"| {md_text(item.category)} | {verdict} | {fmt_interval(item.shortfall)} "
            f"| {md_text(estimators.get(item.category, item.shortfall.method))} | {item.calls_per_day:,.0f} | {saving} "
            f"| {md_text(decision.reason)} | {md_text(analysis.pointers.get(item.category, NONE))} |"
        )
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts) + _projection_lines(analysis.projection)


def _projection_lines(projection: Projection) -> str:
    lines = []
    if projection.all_cloud_usd is not None and projection.advised_split_usd is not None:
        lines.append(f"- monthly spend, all cloud: ${projection.all_cloud_usd:,.2f}; advised split: "
                     f"${projection.advised_split_usd:,.2f} (fleet fixed cost ${projection.fleet_fixed_usd:,.2f} "
                     "included; undecided categories counted as cloud)")
    if projection.break_even_calls_per_month is not None:
        lines.append(f"- break-even: above {projection.break_even_calls_per_month:,.0f} local calls a month the "
                     "fleet's fixed cost is paid back by the cloud spend it saves")
    elif projection.all_cloud_usd is not None:
        lines.append("- break-even: never at these prices — a local call costs at least as much as a cloud call")
    lines += [f"- not shown: {md_text(reason)}" for reason in projection.missing]
    return ("\n" if lines else "") + "".join(f"{line}\n" for line in lines) + ("\n" if lines else "")


def drift_markdown(analysis: DriftAnalysis) -> str:
    parts = [
        "## Drift: local − cloud on the graded score\n",
        "Paired by case on cases graded on both tiers. Grades-only interval: paired bootstrap, or cluster-robust t "
        "when cases share a source document. MDD: the smallest gap this sample detects with 80% power (two-sided, "
        "5%). PPI++: the cheap metrics on every answered case, corrected by the grades (lambda 0 = the metrics did "
        "not help; it treats cases as independent, so where cases share a document the advice reads the cluster-robust "
        "interval instead). Confident-but-wrong: share of graded answers, Wilson interval.\n",
    ]
    if not analysis.rows:
        parts.append(f"_Not measured: {md_text('; '.join(analysis.missing) or 'no paired answers')}._\n")
        return "\n".join(parts)
    lines = ["| category | answered pairs | graded pairs | gap (grades only) | MDD | gap (PPI++) | lambda "
             "| local mean (PPI++) | cloud mean (PPI++) | confident-but-wrong local | confident-but-wrong cloud |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in analysis.rows:
        lines.append(
            f"| {md_text(row.category)} | {row.cases} | {row.graded_pairs} | {fmt_interval(row.gap)} | {fmt(row.mdd)} "
            f"| {fmt_interval(row.ppi_gap.ppi)} | {fmt(row.ppi_gap.lam, 2)} "
            f"| {fmt_interval(row.ppi_tier['local'].ppi)} | {fmt_interval(row.ppi_tier['cloud'].ppi)} "
            f"| {fmt_interval(row.confident_but_wrong['local'])} | {fmt_interval(row.confident_but_wrong['cloud'])} |"
        )
    parts.append("\n".join(lines) + "\n")
    parts.append(_corrected_markdown(analysis.rows))
    return "\n".join(parts)


def _corrected_markdown(rows: list[DriftRow]) -> str:
    """The people-corrected figures, or the plain statement that the grader behind the figures above is unvalidated."""
    labelled = max((row.labelled for row in rows), default=0)
    if not labelled:
        return ("_Every graded figure above is **uncorrected: the grader is unvalidated** (no person has labelled an "
                "answer of this run; `harness label RUN_DIR` does it)._\n")
    lines = [f"### Corrected for the grader by people's labels ({labelled} labelled answers)\n",
             "People are the gold standard: the grader's PPI++ estimate plus the grader's mean error (person − grader) "
             "on the labelled answers of each tier, pooled over categories (two-stage PPI: people ⊂ graded ⊂ "
             "answered; cluster-robust normal interval). The advice reads these.\n",
             "| category | gap local − cloud (corrected) | local mean (corrected) | cloud mean (corrected) "
             "| gap, grader only (uncorrected) | estimator |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.corrected_gap is None or row.corrected_tier is None:
            continue
        lines.append(f"| {md_text(row.category)} | {fmt_interval(row.corrected_gap)} "
                     f"| {fmt_interval(row.corrected_tier['local'])} | {fmt_interval(row.corrected_tier['cloud'])} "
                     f"| {fmt_interval(row.ppi_gap.ppi)} | {md_text(row.corrected_gap.method)} |")
    return "\n".join(lines) + "\n"


def cost_markdown(analysis: DriftAnalysis, pricing_as_of: str | None) -> str:
    costs = analysis.costs
    parts = ["## Cost and latency per tier\n",
             f"Successful calls only. Cloud list prices as of {md_text(pricing_as_of or 'unknown')}; local dollars "
             "from the fleet's cost model (energy + amortised hardware for the busy seconds; marginal = energy).\n"]
    if costs.tiers:
        quantile_heads = " | ".join(f"p{round(q * 100)} latency (s)" for q in QUANTILES)
        heads = f"| tier | calls | $ per 1,000 calls | $ per million tokens | marginal $ per call | {quantile_heads} |"
        lines = [heads,
                 "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in QUANTILES) + " |"]
        for tier in costs.tiers.values():
            latency = " | ".join(fmt_interval(tier.latency[q]) for q in QUANTILES)
            lines.append(f"| {tier.tier} | {tier.calls} | {fmt_interval(tier.usd_per_1k_calls, 4)} "
                         f"| {fmt(tier.usd_per_million_tokens, 4)} | {fmt(tier.marginal_usd_per_call, 6)} "
                         f"| {latency} |")
        parts.append("\n".join(lines) + "\n")
    parts.append(f"- latency, fleet − cloud, paired by case (seconds): {fmt_interval(costs.latency_delta)}")
    parts.append(f"- fleet fixed cost (amortised hardware): ${costs.fleet_fixed_usd_per_month:,.2f} a month")
    parts += [f"- not measured: {md_text(reason)}" for reason in costs.missing]
    return "\n".join(parts) + "\n"
