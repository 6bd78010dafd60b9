"""The grader's part of the report: the grader-coverage table.

Coverage counts answers (case × variant × tier with a generation record) by how their grade ended: graded,
unmeasured (with why: not sampled, no key, budget, no answer, still pending) or grade_error. Counts only: no score is
averaged here, so nothing needs an interval.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from harness.metrics.case_values import ALL_CATEGORIES
from harness.report.escape import md_text

STATUSES = ("graded", "unmeasured", "grade_error")


def coverage_by_category(generation: pd.DataFrame) -> pd.DataFrame:
    """Answers per category by grade status, with a total row."""
    if generation.empty or "grade_status" not in generation.columns:
        return pd.DataFrame()
    counts = pd.crosstab(generation["category"], generation["grade_status"])
    counts = counts.reindex(columns=list(STATUSES), fill_value=0)
    counts["answers"] = counts.sum(axis=1)
    counts.loc[ALL_CATEGORIES] = counts.sum()
    out = counts.reset_index().rename(columns={"grade_status": ""})
    out.columns.name = None
    return out[["category", "answers", *STATUSES]]


def unmeasured_reasons(generation: pd.DataFrame) -> list[tuple[str, int]]:
    rows = generation[generation["grade_status"] != "graded"]
    reasons = Counter(str(r) for r in rows["grade_reason"].fillna("(no reason recorded)"))
    return reasons.most_common()


def coverage_section(generation: pd.DataFrame, grader: Any, table: Any) -> str:
    """The report's "Grader coverage" section (``table`` renders a frame as a Markdown table)."""
    coverage = coverage_by_category(generation)
    if coverage.empty:
        return ""
    parts = ["\n### Grader coverage\n"]
    if grader is not None:
        model = f" ({md_text(grader.model)})" if getattr(grader, "model", None) else ""
        parts.append(f"Grader{model}: {md_text(grader.status)}; sample: {md_text(grader.sample or 'n/a')}.")
        spent = getattr(grader, "spent_usd", None)
        if spent is not None:
            parts.append(f" Spent ${spent:.4f} on {grader.calls or 0} grader calls.")
        if grader.note:
            parts.append(f" {md_text(grader.note)}")
        parts.append("\n")
    parts.append("Answers by how their grade ended: graded, unmeasured (with why, below) or grade_error.\n")
    parts.append(table(coverage, index=False))
    reasons = unmeasured_reasons(generation)
    if reasons:
        parts.append("\nWhy not graded:\n\n" + "".join(f"- {md_text(r)}: {n}\n" for r, n in reasons))
    return "\n".join(parts)
