"""The sections of a run's report, built from the run store alone: overview, retrieval, generation, cost.

Each table that has a chart carries it in the same block, so the page shows the chart beside the table it draws.
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.history import headline_metric
from harness.metrics.stats.intervals import MIN_CASES
from harness.report import (
    attribution_section,
    charts,
    drift_charts,
    drift_section,
    judge_section,
    ladder_section,
    tables,
)
from harness.report.document import Chart, Section
from harness.report.drift_section import DriftAnalysis
from harness.report.escape import md_code, md_text
from harness.report.failures import failures_html
from harness.report.grading import coverage_section
from harness.report.intervals import with_interval_column
from harness.report.markdown_table import table
from harness.store.frames import fresh_answers, replay_summaries
from harness.store.loaded import RunView

INTERVAL_NOTE = f"Intervals are shown from {MIN_CASES} cases up."


def build_sections(view: RunView, analysis: DriftAnalysis | None) -> list[Section]:
    """Tiering advice first (the decision the run exists for), then overview, retrieval, generation, drift, cost."""
    sections = [] if analysis is None else [from_markdown(drift_section.advice_markdown(analysis))]
    sections += [overview(view), *retrieval(view)]
    if not view.generation.empty:
        sections += generation(view)
        sections += [from_markdown(text) for text in attribution_section.section_markdowns(view)]
    if analysis is not None:
        sections.append(from_markdown(judge_section.judge_markdown(judge_section.analyse_judge(view))
                                      + judge_section.judges_markdown(judge_section.analyse_judges(view))))
        sections.append(from_markdown(
            drift_section.drift_markdown(analysis),
            Chart("local − cloud gap per category with its interval", lambda: drift_charts.forest_plot(analysis)),
        ))
        sections.append(from_markdown(
            drift_section.cost_markdown(analysis, view.manifest.pricing_as_of),
            Chart("latency distribution by tier", lambda: drift_charts.latency_histograms(analysis)),
        ))
    return sections


def from_markdown(text: str, chart: Chart | None = None) -> Section:
    """A section from Markdown that opens with its own ``## Title`` line (the drift sections' form)."""
    first, _, rest = text.lstrip("\n").partition("\n")
    hashes = len(first) - len(first.lstrip("#"))
    section = Section(first[hashes:].strip(), level=max(2, min(hashes, 3)))
    section.add(rest.strip("\n") + "\n", chart)
    return section


def overview(view: RunView) -> Section:
    m, suite = view.manifest, view.suite
    lines = [
        f"- status: **{md_text(view.status)}**; started {md_text(m.started_at)}, finished {md_text(m.finished_at)}",
        f"- suite {md_code(suite.path)} (sha256 {md_text(suite.sha256[:12])}), {suite.cases} cases, "
        f"variants: {md_text(', '.join(suite.variants))}",
    ]
    if m.status == "interrupted" and m.resume_with:
        signal_name = md_text(m.interrupted_by or "a signal")
        lines.append(f"- interrupted by {signal_name}; continue with {md_code(m.resume_with)}")
    if m.corpus is not None:
        lines.append(
            f"- corpus {md_code(m.corpus.name)}: {m.corpus.documents} documents, "
            f"fingerprint {md_text(m.corpus.fingerprint[:12])}"
        )
    lines.append(f"- records in the log: {len(view.records)}")
    for tier, info in m.tiers.items():
        state = "ran" if info.status == "run" else f"**skipped** — {md_text(info.reason)}"
        lines.append(f"- {md_text(tier)} tier: {state}")
    if m.grader is not None:
        lines.append(f"- grader: {md_text(m.grader.status)} — {md_text(m.grader.reason or '')}")
    section = Section("Overview")
    section.add("\n".join(lines))
    return section


def replay_note(gen: pd.DataFrame) -> str | None:
    """What the ``cached`` column means for the figures beside it, per tier that replayed any answer."""
    replays = [r for r in replay_summaries(gen).values() if r.replayed]
    if not replays:
        return None
    lines = ["_`cached`: answers replayed from the response cache. Answer metrics and grades count them; latency "
             "and cost count only the calls this run made._", ""]
    for r in replays:
        if r.fresh == 0:
            lines.append(f"- {md_text(r.tier)} tier latency and cost: {md_text(r.not_measured())}")
        else:
            lines.append(f"- {md_text(r.tier)} tier: latency and cost from {r.fresh} fresh calls; {r.replayed} "
                         f"replayed answers left out ({md_text(r.made_on())})")
    return "\n".join(lines)


def retrieval(view: RunView) -> list[Section]:
    frame, metrics, variants = view.retrieval, view.metrics, view.variants
    headline = headline_metric(metrics)
    top = Section("Retrieval")
    top.add("Means over cases with relevant documents; unmeasured cases are counted, not scored.")
    top.add(table(tables.retrieval_by_variant(frame, metrics, variants)))

    with_ci = tables.headline_with_ci(frame, headline, variants)
    interval = Section(f"{headline} with 95% bootstrap interval", level=3)
    interval.add(
        f"{INTERVAL_NOTE}\n\n" + table(with_interval_column(with_ci)),
        Chart(f"{headline} by variant with 95% interval",
              lambda: charts.interval_bars(with_ci.reset_index(), "variant", "mean", headline)),
    )

    category_table = tables.by_category(frame, headline, variants)
    by_category = Section(f"{headline} by category", level=3)
    by_category.add(table(category_table), Chart(f"{headline} by category",
                                                  lambda: charts.category_bars(category_table, headline)))
    out = [top, interval, by_category]

    comparisons = tables.paired_comparisons(frame, headline, variants)
    if not comparisons.empty:
        paired = Section(f"Paired comparison on {headline}", level=3)
        paired.add(
            "Same cases on both sides; paired bootstrap interval; sign-flip test with Holm correction. "
            f"{INTERVAL_NOTE}\n\n" + table(with_interval_column(comparisons), index=False),
            Chart(f"paired difference in {headline}",
                  lambda: charts.interval_bars(comparisons, "comparison", "mean_diff", f"difference in {headline}",
                                               zero_line=True)),
        )
        out.append(paired)
    fidelity = view.manifest.ann_fidelity
    if fidelity:
        rows = pd.DataFrame([{"index": index, **values} for index, values in fidelity.items()])
        ann = Section("ANN fidelity", level=3)
        ann.add(
            "Recall of Chroma's top-k against exact cosine search over the same embeddings: below 1.0, the index "
            "(not the embedder) lost neighbours.\n\n" + table(rows, index=False)
        )
        out.append(ann)
    worst = Section(f"Worst cases by {headline}", level=3)
    worst.add(table(tables.worst_cases(frame, headline), index=False))
    out.append(worst)
    return out


def local_vs_cloud(gen: pd.DataFrame, answer_metrics: list[str]) -> Section:
    """Local minus cloud on the first cheap answer metric, paired by case, per category."""
    drift_metric = answer_metrics[0] if answer_metrics else None
    drift = tables.tier_drift(gen, drift_metric) if drift_metric else pd.DataFrame()
    versus = Section("Local vs cloud", level=3)
    if drift.empty or drift_metric is None:
        versus.add("_Not measured: both tiers must answer the same cases._")
        return versus
    metric = drift_metric
    shown = drift.rename(columns={"tier_mean": "local", "reference_mean": "cloud", "gap": "local − cloud"})
    versus.add(
        f"Local minus cloud on {md_text(metric)}, paired by case. {INTERVAL_NOTE}\n\n"
        + table(with_interval_column(shown), index=False),
        Chart(f"local minus cloud on {metric}",
              lambda: charts.interval_bars(drift, "category", "gap", f"local − cloud, {metric}", zero_line=True)),
    )
    return versus


def generation(view: RunView) -> list[Section]:
    gen = view.generation
    answer_metrics = [c for c in view.answer_metric_names if c in gen.columns]
    # A skipped tier gets a sentence, not a row of dashes that could be read as figures.
    answered = gen[gen["status"] != "skipped"]
    summary = tables.generation_summary(answered, answer_metrics)
    top = Section("Generation")
    top.add(table(summary, index=False), Chart("generation latency by tier and variant",
                                               lambda: charts.latency_boxes(fresh_answers(gen))))
    if note := replay_note(gen):
        top.add(note)
    for tier, info in view.manifest.tiers.items():
        if info.status != "run":
            top.add(f"_{md_text(tier)} tier not run: {md_text(info.reason)}. "
                    f"No {md_text(tier)} figures appear in this report._")
    out = [top]

    ab_metrics: list[str] = [m for m in ("must_include_recall", "token_f1", "rouge_l") if m in answer_metrics]
    ab = tables.generation_ab(gen, ab_metrics)
    if not ab.empty:
        section = Section("A/B of the context fed to the generator", level=3)
        section.add(
            "Paired by case within each tier; bootstrap interval of the difference, sign-flip test; McNemar's exact "
            f"test on whether every required string is present. {INTERVAL_NOTE}\n\n"
            + table(with_interval_column(ab), index=False)
        )
        out.append(section)

    if not ladder_section.is_ladder_run(view):  # a ladder compares each tier with its reference in its own section
        out.append(local_vs_cloud(gen, answer_metrics))
    if coverage := coverage_section(gen, view.manifest.grader, table):
        out.append(from_markdown(coverage))

    failures = gen[gen["status"] == "failed"]
    if not failures.empty:
        failed = Section("Failed calls", level=3)
        columns = ["case_id", "variant", "tier", "reason"]
        failed.add(table(failures[columns], index=False), html=failures_html(failures[columns]))
        out.append(failed)
    return out
