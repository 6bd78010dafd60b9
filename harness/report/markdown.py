"""Render a run's report as Markdown. Everything here reads the run store only."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report import drift_section, tables
from harness.report.escape import md_code, md_text
from harness.report.model import RunView

UNMEASURED = "—"


def cell(value: Any) -> str:
    """One table cell: numbers to 3 decimals, missing values as an em dash (unmeasured, never 0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNMEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 0.001 and value != 0 else f"{value:.3f}"
    return md_text(value)


def table(frame: pd.DataFrame, index: bool = True) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    frame = frame.reset_index() if index and frame.index.name is not None else frame
    header = "| " + " | ".join(md_text(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def render(view: RunView) -> str:
    out = [f"# {md_text(view.suite.name)} — run {md_text(view.run_id)}\n", *_failure_banner(view)]
    analysis = drift_section.analyse(view) if not view.generation.empty else None
    if analysis is not None:
        out.append(drift_section.advice_markdown(analysis))
    out.append(_overview(view))
    out.append(_retrieval(view))
    if not view.generation.empty:
        out.append(_generation(view))
    if analysis is not None:
        out.append(drift_section.drift_markdown(analysis))
        out.append(drift_section.cost_markdown(analysis, view.manifest.pricing_as_of))
    return "\n".join(out)


def _failure_banner(view: RunView) -> list[str]:
    """A failed run says so, and why, before anything else."""
    m = view.manifest
    if m.status != "failed":
        return []
    reasons = (m.verdict.reasons if m.verdict is not None else []) or [m.error or "no reason recorded"]
    return ["**Run failed:** " + "; ".join(md_text(reason) for reason in reasons) + "\n"]


def _overview(view: RunView) -> str:
    m, suite = view.manifest, view.suite
    lines = [
        "## Overview\n",
        f"- status: **{view.status}**; started {m.started_at}, finished {m.finished_at}",
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
    return "\n".join(lines) + "\n"


def _retrieval(view: RunView) -> str:
    frame, metrics, variants = view.retrieval, view.metrics, view.variants
    headline = tables.headline_metric(metrics)
    parts = [
        "## Retrieval\n",
        "Means over cases with relevant documents; unmeasured cases are counted, not scored.\n",
        table(tables.retrieval_by_variant(frame, metrics, variants)),
        f"\n### {md_text(headline)} with 95% bootstrap interval\n",
        table(tables.headline_with_ci(frame, headline, variants)),
        f"\n### {md_text(headline)} by category\n",
        table(tables.by_category(frame, headline, variants)),
    ]
    comparisons = tables.paired_comparisons(frame, headline, variants)
    if not comparisons.empty:
        parts += [
            f"\n### Paired comparison on {md_text(headline)}\n",
            "Same cases on both sides; paired bootstrap interval; sign-flip test with Holm correction.\n",
            table(comparisons, index=False),
        ]
    fidelity = view.manifest.ann_fidelity
    if fidelity:
        rows = pd.DataFrame([{"index": name, **values} for name, values in fidelity.items()])
        parts += [
            "\n### ANN fidelity\n",
            "Recall of Chroma's top-k against exact cosine search over the same embeddings: below 1.0, the index "
            "(not the embedder) lost neighbours.\n",
            table(rows, index=False),
        ]
    parts += [f"\n### Worst cases by {md_text(headline)}\n", table(tables.worst_cases(frame, headline), index=False)]
    return "\n".join(parts)


def _generation(view: RunView) -> str:
    gen = view.generation
    answer_metrics = [c for c in view.answer_metric_names if c in gen.columns]
    # A skipped tier gets a sentence, not a row of dashes that could be read as figures.
    summary = tables.generation_summary(gen[gen["status"] != "skipped"], answer_metrics)
    parts = ["## Generation\n", table(summary, index=False)]
    skipped = {t: i.reason for t, i in view.manifest.tiers.items() if i.status != "run"}
    for tier, reason in skipped.items():
        parts.append(
            f"\n_{md_text(tier)} tier not run: {md_text(reason)}. No {md_text(tier)} figures appear in this report._\n"
        )
    ab_metrics: list[str] = [m for m in ("must_include_recall", "token_f1", "rouge_l") if m in answer_metrics]
    ab = tables.generation_ab(gen, ab_metrics)
    if not ab.empty:
        parts += [
            "\n### A/B of the context fed to the generator\n",
            "Paired by case within each tier; bootstrap interval of the difference, sign-flip test; McNemar's exact "
            "test on whether every required string is present.\n",
            table(ab, index=False),
        ]
    drift_metric = answer_metrics[0] if answer_metrics else None
    drift = tables.tier_drift(gen, drift_metric) if drift_metric else pd.DataFrame()
    parts.append("\n### Local vs cloud\n")
    if drift.empty:
        parts.append("_Not measured: both tiers must answer the same cases._\n")
    else:
        parts.append(f"Local minus cloud on {md_text(drift_metric)}, paired by case.\n")
        parts.append(table(drift, index=False))
    failures = gen[gen["status"] == "failed"]
    if not failures.empty:
        parts += ["\n### Failed calls\n", table(failures[["case_id", "variant", "tier", "reason"]], index=False)]
    return "\n".join(parts)

