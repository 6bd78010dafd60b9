"""Pure metric functions: retrieval metrics (trec_eval definitions), answer metrics, and A/B statistics.

Nothing here does I/O or imports a network or storage library; everything is a function of its arguments.
"""

from __future__ import annotations

from harness.metrics.answer import ANSWER_METRICS, abstained, score_answer
from harness.metrics.retrieval import METRICS, ann_fidelity, doc_run_from_chunks, evaluate, parse_metric
from harness.metrics.stats import (
    bootstrap_mean_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_test,
    wilcoxon_test,
)

__all__ = [
    "ANSWER_METRICS",
    "METRICS",
    "abstained",
    "ann_fidelity",
    "bootstrap_mean_ci",
    "doc_run_from_chunks",
    "evaluate",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "parse_metric",
    "score_answer",
    "sign_flip_test",
    "wilcoxon_test",
]
