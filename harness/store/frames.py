"""Turn the run log into pandas frames. Reads only the typed run-store records; never calls a model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import pandas as pd

from harness.config.criteria import CRITERIA
from harness.store.records import CaseRecord, GradeRecord

GRADE_COLUMNS = [
    "grade_status", "grade_score", "confident_but_wrong", "grade_reason",
    *(f"grade_{name}" for name in CRITERIA),
    "grade_rationale", "grader_model", "grade_input_tokens", "grade_output_tokens", "grade_cache_read_tokens",
    "grade_cache_write_tokens", "grade_cost_usd", "grade_batch_id",
]  # fmt: skip


GENERATION_COLUMNS = [
    "case_id", "variant", "category", "tier", "answerable", "status", "reason", "host", "model", "text", "latency_s",
    "input_tokens", "output_tokens", "cost_usd", "attempts", "fallback", "cached", "server_eval_s",
    *GRADE_COLUMNS, "source_doc",
]  # fmt: skip
"""The columns of :func:`generation_frame` before the answer metrics, which come from the run itself."""


def grade_columns(grade: GradeRecord) -> dict[str, Any]:
    """One answer's grade as flat columns; a criterion the grade lacks stays missing (never 0)."""
    scores = grade.scores or {}
    row: dict[str, Any] = {
        "grade_status": grade.status,
        "grade_score": grade.score,
        "confident_but_wrong": grade.confident_but_wrong,
        "grade_reason": grade.reason,
        "grade_rationale": grade.rationale,
        "grader_model": grade.grader_model,
        "grade_input_tokens": grade.input_tokens,
        "grade_output_tokens": grade.output_tokens,
        "grade_cache_read_tokens": grade.cache_read_tokens,
        "grade_cache_write_tokens": grade.cache_write_tokens,
        "grade_cost_usd": grade.cost_usd,
        "grade_batch_id": grade.batch_id,
    }
    row.update({f"grade_{name}": scores.get(name) for name in CRITERIA})
    return row


def retrieval_frame(records: Iterable[CaseRecord], metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per case × variant with every retrieval metric; unmeasured metrics stay missing (not 0).

    ``metrics`` are the run's metric names (from its manifest), so a metric the run did not record still gets a column
    of missing values rather than a KeyError, and a metric it did record is never dropped.
    """
    rows = []
    for record in records:
        retrieval = record.retrieval
        row: dict[str, Any] = {
            "case_id": record.case_id,
            "variant": record.variant,
            "category": record.category,
            "unmeasured_reason": retrieval.unmeasured_reason,
            "retrieval_latency_s": retrieval.latency_s,
            "top_doc": retrieval.ranked[0][0] if retrieval.ranked else None,
            "ranked_docs": len(retrieval.ranked),
        }
        row.update(dict.fromkeys(metrics))
        row.update(retrieval.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def generation_frame(records: Iterable[CaseRecord], answer_metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per case × variant × tier for generation cases, whatever happened (ok, failed or skipped)."""
    rows = []
    for record in records:
        for tier, gen in record.generations.items():
            row: dict[str, Any] = {
                "case_id": record.case_id,
                "variant": record.variant,
                "category": record.category,
                "tier": tier,
                "answerable": record.answerable,
                "status": gen.status,
                "reason": gen.reason or gen.error,
                "host": gen.host,
                "model": gen.model,
                "text": gen.text,
                "latency_s": gen.latency_s,
                "input_tokens": gen.usage.input_tokens,
                "output_tokens": gen.usage.output_tokens,
                "cost_usd": gen.cost_usd,
                "attempts": len(gen.attempts),
                "fallback": gen.fallback,
                "cached": gen.cached,
                "server_eval_s": gen.timing.eval_s,
                **grade_columns(gen.grade),
                "source_doc": _source_doc(record),
            }
            row.update(dict.fromkeys(answer_metrics))
            row.update(gen.answer_metrics)
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else GENERATION_COLUMNS)


def _source_doc(record: CaseRecord) -> str | None:
    """The case's most relevant document: cases that share one are not independent evidence of drift."""
    relevant = [(grade, doc) for doc, grade in record.relevant.items() if grade > 0]
    return max(relevant)[1] if relevant else None


def results_frame(
    records: list[CaseRecord], metrics: Sequence[str] = (), answer_metrics: Sequence[str] = ()
) -> pd.DataFrame:
    """The ``results.parquet`` table: retrieval columns plus, per tier, the generation columns prefixed by tier."""
    retrieval = retrieval_frame(records, metrics)
    generation = generation_frame(records, answer_metrics)
    if generation.empty:
        return retrieval
    wide = pd.DataFrame(generation.drop(columns=["category"]).set_index(["case_id", "variant", "tier"]).unstack("tier"))
    pairs = cast(list[tuple[str, str]], list(wide.columns))  # (column, tier) after the unstack
    wide.columns = pd.Index([f"{tier}.{column}" for column, tier in pairs])
    return retrieval.merge(wide.reset_index(), on=["case_id", "variant"], how="left")
