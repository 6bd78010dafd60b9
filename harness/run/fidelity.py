"""ANN fidelity: how much of the exact cosine top-k Chroma's HNSW index returns, so an embedder's misses can be told
from the index's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.config.suite import Suite
from harness.metrics.retrieval import ann_fidelity
from harness.retrieval.chroma_store import DenseIndex
from harness.retrieval.exact import ann_and_exact_top_k


def ann_fidelity_at_k(index: DenseIndex, queries: Sequence[str | np.ndarray], k: int) -> float | None:
    """Mean over queries of the recall of the exact top-``k`` in the HNSW top-``k``; ``None`` when nothing was
    measurable (no queries, or an empty index)."""
    recalls = [ann_fidelity(approx, exact, k) for approx, exact in ann_and_exact_top_k(index, queries, k)]
    measured = [r for r in recalls if r is not None]
    return float(np.mean(measured)) if measured else None


def suite_ann_fidelity(suite: Suite, setup: Any) -> dict[str, Any]:
    """ANN fidelity once per dense collection a suite uses, over the suite's questions."""
    out: dict[str, Any] = {}
    questions = [case.question for case in suite.cases]
    for variant in suite.variants:
        if variant.retriever == "bm25":
            continue
        chunking, embedder = suite.variant_chunking(variant), suite.variant_embedder(variant)
        index = setup.indexes.dense(chunking, embedder)
        if index.name in out:
            continue
        out[index.name] = {
            "variants": variant.name,
            "chunking": chunking.label,
            "embedder": embedder.label,
            f"recall@{suite.k}": ann_fidelity_at_k(index, questions, suite.k),
        }
    return out
