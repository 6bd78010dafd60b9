"""Build the JSON records of ``cases.jsonl``: pure functions from results to plain dicts.

An unmeasured value is ``None`` with its reason next to it, never a zero.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from harness.config.suite import Case
from harness.metrics import answer as answer_metrics
from harness.providers.types import Generation

NO_RELEVANT = "no relevant documents (answer is not in the corpus)"


def case_header(case: Case, variant: str) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "variant": variant,
        "category": case.category,
        "tags": list(case.tags),
        "question": case.question,
        "reference": case.reference,
        "must_include": list(case.must_include),
        "relevant": dict(case.relevant),
        "generate": case.generate,
    }


def retrieval_record(
    ranked_docs: list[tuple[str, float]],
    chunk_ids: list[str],
    metrics: dict[str, float | None],
    latency_s: float,
    has_relevant: bool,
) -> dict[str, Any]:
    return {
        "ranked": [[doc, float(score)] for doc, score in ranked_docs],
        "chunks": chunk_ids,
        "metrics": metrics,
        "unmeasured_reason": None if has_relevant else NO_RELEVANT,
        "latency_s": latency_s,
    }


def generation_record(generation: Generation, case: Case, *, answerable: bool) -> dict[str, Any]:
    """A successful generation with its cheap answer metrics."""
    data = asdict(generation)
    data["status"] = "ok"
    # A not-in-corpus case is scored on whether the answer declined, not on overlap with "this is not covered".
    data["answer_metrics"] = answer_metrics.score_answer(
        generation.text,
        case.reference if answerable else None,
        case.must_include if answerable and case.must_include else None,
    )
    data["fallback"] = generation.tier == "cloud" and any(a.host != "cloud" for a in generation.attempts)
    return data


def failed_generation_record(
    tier: str, error: str, reasons: dict[str, str] | None = None, attempts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"status": "failed", "tier": tier, "error": error, "host_reasons": reasons or {}, "attempts": attempts or []}


def skipped_generation_record(tier: str, reason: str) -> dict[str, Any]:
    return {"status": "skipped", "tier": tier, "reason": reason}


def unmeasured_grade(reason: str) -> dict[str, Any]:
    return {"status": "unmeasured", "reason": reason}
