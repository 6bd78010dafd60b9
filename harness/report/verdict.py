"""The verdict at the top of a report: the run's status, what failed, and the headline findings.

Each line comes from one entry of :data:`VERDICT_LINES`, in order; an entry returns ``None`` when its finding does not
apply to the run (for example no cloud tier ran). Sections that produce a finding (tiering advice, drift against
earlier runs) register their line here, so the verdict never lists by hand what the report holds.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.metrics.case_values import ALL_CATEGORIES
from harness.report import tables
from harness.report.drift_section import DriftAnalysis, fmt_interval
from harness.report.escape import md_text
from harness.report.intervals import interval_text
from harness.store.frames import fresh_calls, replay_summaries
from harness.store.loaded import RunView

VerdictLine = Callable[[RunView, DriftAnalysis | None], str | None]


def failure_banner(view: RunView) -> str | None:
    """A failed run says so, and why, before anything else (the reasons come from the run's own verdict)."""
    m = view.manifest
    if m.status != "failed":
        return None
    reasons = (m.verdict.reasons if m.verdict is not None else []) or [m.error or "no reason recorded"]
    return "**Run failed:** " + "; ".join(md_text(reason) for reason in reasons)


def run_status(view: RunView, analysis: DriftAnalysis | None = None) -> str:
    m = view.manifest
    written = f"{m.records_written} of {m.records_expected} records" if m.records_expected else "records unknown"
    line = f"**run {md_text(view.status)}** — {written}"
    if m.error:
        line += f"; error: {md_text(m.error)}"
    return line


def replayed_answers(view: RunView, analysis: DriftAnalysis | None = None) -> str | None:
    """The share of each tier's answers replayed from the response cache: first, because it says which of the
    figures below were measured by this run."""
    replays = replay_summaries(view.generation)
    if not replays:
        return None
    cache = view.manifest.cache
    mode = f" (cache {md_text(cache.mode)}, set by {md_text(cache.chosen_by)})" if cache is not None else ""
    if not any(r.replayed for r in replays.values()):
        return f"replayed from the response cache: no answer{mode} — every figure is from calls this run made"
    parts = []
    for r in replays.values():
        share = f"{r.replayed} of {r.answered} answers ({r.share:.0%}"
        share += f"; {md_text(r.made_on())})" if r.replayed else ")"
        parts.append(f"{md_text(r.tier)} {share}")
    return (f"replayed from the response cache{mode}: " + ", ".join(parts)
            + " — answer metrics and grades count them; latency, cost and failure rate count fresh calls only")


def retiring_models(view: RunView, analysis: DriftAnalysis | None = None) -> str | None:
    """Models the run called that were due to retire within 30 days, as the run recorded them."""
    warnings = view.manifest.model_warnings
    if not warnings:
        return None
    return "**warning — model retiring soon:** " + "; ".join(md_text(w) for w in warnings)


def what_failed(view: RunView, analysis: DriftAnalysis | None = None) -> str:
    # A tier skipped on purpose (no key) is not a failure: it is listed apart, so "failed" only names what broke.
    skipped = [
        f"{md_text(tier)} tier ({md_text(info.reason)})" for tier, info in view.manifest.tiers.items()
        if info.status != "run"
    ]
    problems: list[str] = []
    unmeasured: list[str] = []
    gen = view.generation
    if not gen.empty:
        replays = replay_summaries(gen)
        for tier, part in gen[gen["status"] != "skipped"].groupby("tier", sort=True):
            calls = fresh_calls(part)  # a replayed answer was no call: it can neither answer nor fail
            failed = int((calls["status"] == "failed").sum())
            if failed:
                problems.append(f"{md_text(tier)} tier: {failed} of {len(calls)} calls failed (see Failed calls)")
            elif calls.empty and (replayed := replays.get(str(tier))) is not None:
                unmeasured.append(f"{md_text(tier)} tier {md_text(replayed.not_measured())}")
    if view.manifest.budget_exhausted:
        problems.append("the cloud budget ran out")
    if problems:
        line = "failed: " + "; ".join([*problems, *unmeasured])
    elif unmeasured and len(unmeasured) == gen.loc[gen["status"] != "skipped", "tier"].nunique():
        line = "failed: not measured, no tier made a call — " + "; ".join(unmeasured)
    elif unmeasured:
        line = "failed: nothing — every tier that made calls answered; " + "; ".join(unmeasured)
    else:
        line = "failed: nothing — every tier that ran answered"
    return line + ("; skipped: " + "; ".join(skipped) if skipped else "")


def tiering_advice(view: RunView, analysis: DriftAnalysis | None) -> str | None:
    """Which categories the local tier can serve, from the Tiering advice section."""
    if analysis is None:
        return None
    if not analysis.advice:
        return f"tiering advice: none — {md_text('; '.join(analysis.missing) or 'nothing to compare')}"
    routed: dict[str, list[str]] = {}
    for item in analysis.advice:
        routed.setdefault(item.decision.verdict, []).append(md_text(item.category))
    parts = [f"{verdict} for {', '.join(names)}" for verdict, names in routed.items()]
    return "tiering advice: " + "; ".join(parts) + " (see Tiering advice)"


def largest_drift(view: RunView, analysis: DriftAnalysis | None) -> str | None:
    """The category where the local tier's graded score falls furthest below the cloud's; without grades, the
    largest gap on the first cheap answer metric."""
    graded = [row for row in (analysis.rows if analysis else []) if row.gap.estimate is not None]
    if graded:
        worst = min(graded, key=lambda row: (row.gap.estimate or 0.0, row.category))
        return (
            f"largest drift, local − cloud on the graded score: {fmt_interval(worst.gap)} in category "
            f"{md_text(worst.category)} (see Drift)"
        )
    return largest_tier_gap(view)


def largest_tier_gap(view: RunView) -> str | None:
    """The category where the local tier falls furthest below the cloud tier on a cheap metric, with its interval."""
    gen = view.generation
    names = [name for name in view.answer_metric_names if name in gen.columns]
    if gen.empty or not names:
        return None
    drift = tables.tier_drift(gen, names[0])
    categories = drift[drift["category"] != ALL_CATEGORIES] if not drift.empty else drift
    if categories.empty:
        return None
    worst = categories.sort_values(["gap", "category"]).iloc[0]
    interval = interval_text(worst["ci_low"], worst["ci_high"], int(worst["n"]))
    return (
        f"largest local − cloud gap (ungraded, cheap metric): {worst['gap']:+.3f} on "
        f"{md_text(names[0])} in category "
        f"{md_text(worst['category'])} (95% CI {interval}, n={int(worst['n'])})"
    )


VERDICT_LINES: dict[str, VerdictLine] = {
    "replays": replayed_answers,
    "status": run_status,
    "retiring_models": retiring_models,
    "failures": what_failed,
    "tiering": tiering_advice,
    "drift": largest_drift,
}
"""Name -> line builder, in the order the verdict shows them."""


def verdict(view: RunView, analysis: DriftAnalysis | None = None) -> list[str]:
    return [line for build in VERDICT_LINES.values() if (line := build(view, analysis))]
