"""Turn the run log into pandas frames, and say which of a generation frame's rows are calls this run made.

Reads only the typed run-store records; never calls a model. An answer replayed from the response cache is an answer
(its quality metrics and grade count) but not a call: its latency and cost are the call's that first made it, so
latency, throughput, failure rate and cost read :func:`fresh_calls` only, and say :meth:`TierReplays.not_measured`
where a tier has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from harness.config.criteria import CRITERIA
from harness.store.records import CaseRecord, GradeRecord

GRADE_COLUMNS = [
    "grade_status", "grade_score", "confident_but_wrong", "grade_reason",
    *(f"grade_{name}" for name in CRITERIA),
    "grade_rationale", "grader_model", "grade_input_tokens", "grade_output_tokens", "grade_cache_read_input_tokens",
    "grade_cache_creation_input_tokens", "grade_cost_usd", "grade_batch_id",
]  # fmt: skip


GENERATION_COLUMNS = [
    "case_id", "variant", "category", "tier", "answerable", "status", "reason", "host", "model", "text", "latency_s",
    "input_tokens", "output_tokens", "cost_usd", "attempts", "fallback", "cached", "cache_made_at", "cache_run",
    "cache_key", "server_eval_s", *GRADE_COLUMNS, "source_doc",
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
        "grade_cache_read_input_tokens": grade.cache_read_input_tokens,
        "grade_cache_creation_input_tokens": grade.cache_creation_input_tokens,
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
                # where the answer's cache entry came from (a replay's origin), so a replay is told from a new answer
                "cache_made_at": gen.cache_entry.made_at if gen.cache_entry else None,
                "cache_run": gen.cache_entry.run_id if gen.cache_entry else None,
                "cache_key": gen.cache_entry.key if gen.cache_entry else None,
                "server_eval_s": gen.timing.eval_s,
                **grade_columns(gen.grade),
                "source_doc": source_doc(record),
            }
            row.update(dict.fromkeys(answer_metrics))
            row.update(gen.answer_metrics)
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else GENERATION_COLUMNS)


def source_doc(record: CaseRecord) -> str | None:
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


# ------------------------------------------------------------------------------------------------ replays


def fresh_calls(gen: pd.DataFrame) -> pd.DataFrame:
    """The calls this run made: answers not replayed from the cache, and failed calls (errors are never cached)."""
    if gen.empty:
        return gen
    cached = gen["cached"].fillna(False).astype(bool) if "cached" in gen else False
    return gen[((gen["status"] == "ok") & ~cached) | (gen["status"] == "failed")]


def fresh_answers(gen: pd.DataFrame) -> pd.DataFrame:
    """The answers a call of this run made: what latency and cost are measured on."""
    calls = fresh_calls(gen)
    return calls[calls["status"] == "ok"] if not calls.empty else calls


@dataclass(frozen=True)
class TierReplays:
    """How many of one tier's answers were replayed from the response cache, and when they were first made."""

    tier: str
    answered: int
    replayed: int
    first_made: str | None = None  # earliest date (YYYY-MM-DD) a replayed answer was made; None if not recorded
    last_made: str | None = None

    @property
    def fresh(self) -> int:
        return self.answered - self.replayed

    @property
    def share(self) -> float | None:
        return self.replayed / self.answered if self.answered else None

    @property
    def mostly_replayed(self) -> bool:
        return self.answered > 0 and self.replayed * 2 > self.answered

    def made_on(self) -> str:
        if self.first_made is None:
            return "first made on a date this run did not record"
        if self.last_made is None or self.last_made == self.first_made:
            return f"first made on {self.first_made}"
        return f"first made between {self.first_made} and {self.last_made}"

    def why(self) -> str:
        return f"all {self.replayed} answers replayed from the cache ({self.made_on()})"

    def not_measured(self) -> str:
        """Why this tier has no latency, throughput or cost figure: every answer it gave was replayed."""
        return f"not measured: {self.why()}"


def replay_summaries(gen: pd.DataFrame) -> dict[str, TierReplays]:
    """Per tier (sorted), the answers it gave and how many of them were replayed from the cache."""
    out: dict[str, TierReplays] = {}
    if gen.empty:
        return out
    ok = gen[gen["status"] == "ok"]
    for tier, part in ok.groupby("tier", sort=True):
        replays = part[part["cached"].fillna(False).astype(bool)] if "cached" in part else part.iloc[0:0]
        made = replays["cache_made_at"].dropna().astype(str) if "cache_made_at" in replays else pd.Series(dtype=str)
        dates = sorted({stamp[:10] for stamp in made})  # the date part of an ISO 8601 time
        out[str(tier)] = TierReplays(str(tier), len(part), len(replays), dates[0] if dates else None,
                                     dates[-1] if dates else None)
    return out
