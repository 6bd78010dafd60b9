"""Exact (brute-force) cosine search over the vectors Chroma stores, and how faithful HNSW is to it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.retrieval.base import ScoredChunk, ranked
from harness.retrieval.chroma_store import DenseIndex
from harness.retrieval.embedders import normalise

FIDELITY_BATCH = 256  # queries whose HNSW and exact results are held at once


class ExactIndex:
    """Brute-force top-k over a snapshot of a collection's stored vectors (numpy, no ANN)."""

    def __init__(self, index: DenseIndex) -> None:
        self.index = index
        self.ids, self.doc_ids, self.matrix = index.embeddings()

    def query(self, text_or_vector: str | np.ndarray | Sequence[float], k: int) -> list[ScoredChunk]:
        """Top ``k`` by cosine similarity; ties broken by chunk id, as in ``DenseIndex.query``."""
        if not self.ids or k <= 0:
            return []
        if isinstance(text_or_vector, str):
            vector = self.index.queries.get(text_or_vector)
        else:
            vector = normalise(np.asarray(text_or_vector, dtype=np.float32))[0]
        scores = self.matrix @ vector
        return ranked([(cid, did, float(s), "") for cid, did, s in zip(self.ids, self.doc_ids, scores, strict=True)],
                      k)


def ann_and_exact_top_k(index: DenseIndex, queries: Sequence[str | np.ndarray], k: int
                        ) -> list[tuple[list[str], list[str]]]:
    """For each query, the chunk ids of Chroma's HNSW top-``k`` and of the exact cosine top-``k``.

    Texts are embedded once (through the index's query vectors, so the retrieval phase reuses them) and the same
    vector goes to both searches; the HNSW searches go to Chroma in batches, without the chunks' text, and only ids
    are kept, so memory does not grow with the number of queries beyond their ids.
    """
    if not queries:
        return []
    exact = ExactIndex(index)
    texts = [q for q in queries if isinstance(q, str)]
    index.queries.prefetch(texts)
    out: list[tuple[list[str], list[str]]] = []
    for start in range(0, len(queries), FIDELITY_BATCH):
        part = queries[start:start + FIDELITY_BATCH]
        vectors = np.stack([index.queries.get(q) if isinstance(q, str) else
                            normalise(np.asarray(q, dtype=np.float32))[0] for q in part])
        approx = index.query_many(vectors, k, texts=False)
        out += [([c.chunk_id for c in hits], [c.chunk_id for c in exact.query(v, k)])
                for hits, v in zip(approx, vectors, strict=True)]
    return out
