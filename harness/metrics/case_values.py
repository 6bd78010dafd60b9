"""Per-case values of one metric in one slice of a run, keyed so two runs can be paired case by case.

Retrieval metrics come from the retrieval frame (one row per case × variant; unmeasured cases are left out and
counted). Answer metrics and ``grade_score`` come from the generation frame (one row per case × variant × tier;
only answered calls count). Pure pandas: the frames are built by ``report/`` from the run store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.errors import InputError
from harness.metrics.answer import ANSWER_METRICS

GRADE_SCORE = "grade_score"
#: The row of every category together, in every per-category table (drift, compare, A/B, grader coverage). In
#: parentheses, so it cannot be taken for a category a suite names "all".
ALL_CATEGORIES = "(all)"


@dataclass(frozen=True)
class Slice:
    """Which metric, narrowed to a variant, category and (for answer metrics) a tier."""

    metric: str
    variant: str | None = None
    category: str | None = None
    tier: str | None = None


@dataclass(frozen=True)
class CaseValues:
    """``values``: key ``case_id|variant[|tier]`` -> measured value; ``n_unmeasured``: rows in the slice without one."""

    values: dict[str, float]
    n_unmeasured: int


def is_answer_metric(metric: str) -> bool:
    return metric in ANSWER_METRICS or metric == GRADE_SCORE


def known_metrics(retrieval_metrics: list[str]) -> list[str]:
    return [*retrieval_metrics, *ANSWER_METRICS, GRADE_SCORE]


def case_values(
    chosen: Slice, retrieval: pd.DataFrame, generation: pd.DataFrame, retrieval_metrics: list[str]
) -> CaseValues:
    """The measured values of ``chosen`` in one run. Raises InputError for a metric the run does not know."""
    if chosen.metric in retrieval_metrics:
        frame = retrieval
        if frame.empty:
            return CaseValues({}, 0)
        frame = _narrow(frame, chosen)
        measured = frame[frame["unmeasured_reason"].isna() & frame[chosen.metric].notna()]
        keys = measured["case_id"].astype(str) + "|" + measured["variant"].astype(str)
        values = dict(zip(keys, measured[chosen.metric].astype(float), strict=True))
        return CaseValues(values, len(frame) - len(measured))
    # An answer metric of this run: today's registry, or one the run recorded itself (e.g. a cheap predictor).
    recorded = chosen.metric in generation.columns and pd.api.types.is_numeric_dtype(generation[chosen.metric])
    if is_answer_metric(chosen.metric) or recorded:
        if chosen.tier is None:
            raise InputError(
                f"{chosen.metric} is an answer metric: say whose answers with `tier: local` or `tier: cloud`",
                hint="add tier to the rule",
            )
        if generation.empty:
            return CaseValues({}, 0)
        frame = _narrow(generation[generation["tier"] == chosen.tier], chosen)
        column = frame[chosen.metric] if chosen.metric in frame else pd.Series(index=frame.index, dtype=float)
        ok = (frame["status"] == "ok") & column.notna()
        measured = frame[ok]
        keys = measured["case_id"].astype(str) + "|" + measured["variant"].astype(str) + "|" + chosen.tier
        return CaseValues(dict(zip(keys, column[ok].astype(float), strict=True)), len(frame) - len(measured))
    raise InputError(
        f"unknown metric {chosen.metric!r}",
        hint=f"metrics of this run: {', '.join(known_metrics(retrieval_metrics))}",
    )


def _narrow(frame: pd.DataFrame, chosen: Slice) -> pd.DataFrame:
    if chosen.variant is not None:
        frame = frame[frame["variant"] == chosen.variant]
    if chosen.category is not None:
        frame = frame[frame["category"] == chosen.category]
    return frame


def paired(a: CaseValues, b: CaseValues) -> tuple[list[str], list[float], list[float]]:
    """The keys both sides measured, in sorted order, with each side's values."""
    shared = sorted(set(a.values) & set(b.values))
    return shared, [a.values[k] for k in shared], [b.values[k] for k in shared]
