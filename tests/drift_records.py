"""Typed run records with a known truth, for the drift, advice and report tests (not a test module itself)."""

from __future__ import annotations

import numpy as np

from harness.providers.types import Usage
from harness.store.records import CaseRecord, GenerationRecord, GradeRecord, RetrievalRecord

#: category -> true mean graded score of (local, cloud)
TRUTH = {"code-section": (0.80, 0.80), "jurisdiction": (0.45, 0.85)}
HOSTS = {"h0": {"watts": 300.0, "usd_per_kwh": 0.2, "hardware_usd_per_hour": 0.5}}


def make_records(cases_per_category: int = 60, graded_share: float = 0.5, seed: int = 0,
                 truth: dict[str, tuple[float, float]] | None = None) -> list[CaseRecord]:
    """Both tiers answer every case; a random ``graded_share`` of cases is graded on both.

    Scores are the true mean plus case noise; the answer metrics (the cheap predictor) track the score with noise, so
    PPI has an informative predictor. Each case has its own source document.
    """
    rng = np.random.default_rng(seed)
    out = []
    for category, means in (truth or TRUTH).items():
        for i in range(cases_per_category):
            case_effect = rng.normal(0, 0.08)
            graded = rng.random() < graded_share
            generations = {}
            for tier, mean in zip(("local", "cloud"), means, strict=True):
                score = float(np.clip(mean + case_effect + rng.normal(0, 0.08), 0, 1))
                grade = (GradeRecord(status="graded", score=score, confident_but_wrong=score < 0.3,
                                     grader_model="claude-test")
                         if graded else GradeRecord.unmeasured("not in the grading sample"))
                metric = float(np.clip(score + rng.normal(0, 0.05), 0, 1))
                latency = float(rng.gamma(4.0, 0.1) if tier == "local" else rng.gamma(6.0, 0.15))
                usage = Usage(input_tokens=800, output_tokens=60)
                cost = (latency / 3600 * (0.3 * 0.2 + 0.5)) if tier == "local" else (800 * 3 + 60 * 15) / 1e6
                generations[tier] = GenerationRecord(
                    status="ok", tier=tier, text="an answer", host="h0" if tier == "local" else "cloud",
                    model="m", latency_s=latency, usage=usage, cost_usd=cost, grade=grade,
                    answer_metrics={"token_f1": metric, "embedding_cosine": metric, "must_include_recall": None,
                                    "context_support": metric, "abstained": 0.0},
                )
            out.append(CaseRecord(
                case_id=f"{category}-{i}", variant="dense", category=category, question="q?", reference="r",
                relevant={f"doc-{category}-{i}": 2}, generate=True,
                retrieval=RetrievalRecord(ranked=[], metrics={}), generations=generations,
            ))
    return out


def write_run(path, records: list[CaseRecord]):  # type: ignore[no-untyped-def]
    """A finished run directory holding ``records``, for the commands that read runs (label, judge, report)."""
    from harness.store.records import Manifest, SuiteInfo
    from harness.store.store import RunStore

    variants = sorted({r.variant for r in records})
    suite = SuiteInfo(name="sim", path="does-not-exist.yaml", sha256="0" * 64, cases=len(records),
                      variants=variants, metrics=["mrr"], k=5,
                      answer_metrics=["token_f1", "embedding_cosine", "must_include_recall", "context_support",
                                      "abstained"])
    store = RunStore.create(path, Manifest(run_id=path.name, status="complete", suite=suite))
    for record in records:
        store.append(record)
    store.release()
    return path
