"""Hybrid retrieval: reciprocal rank fusion of a dense and a lexical ranking."""

from __future__ import annotations

from collections.abc import Sequence

from harness.retrieval.base import Retriever, ScoredChunk, search_batch


def reciprocal_rank_fusion(rankings: Sequence[Sequence[ScoredChunk]], k: int, rrf_k: int = 60) -> list[ScoredChunk]:
    """Fuse ranked lists: ``score(c) = Σ_lists 1 / (rrf_k + rank_list(c))`` over the lists that contain ``c``.

    Ties are broken by the best rank ``c`` reached in any list, then by chunk id, so the order is deterministic.
    """
    fused: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    first: dict[str, ScoredChunk] = {}
    for ranking in rankings:
        for position, chunk in enumerate(ranking, start=1):
            fused[chunk.chunk_id] = fused.get(chunk.chunk_id, 0.0) + 1.0 / (rrf_k + position)
            best_rank[chunk.chunk_id] = min(best_rank.get(chunk.chunk_id, position), position)
            first.setdefault(chunk.chunk_id, chunk)
    order = sorted(fused, key=lambda cid: (-fused[cid], best_rank[cid], cid))[:k]
    return [ScoredChunk(chunk_id=cid, doc_id=first[cid].doc_id, score=fused[cid], rank=i, text=first[cid].text)
            for i, cid in enumerate(order, start=1)]


class HybridRetriever:
    """Dense + BM25 fused with RRF.

    Args:
        dense: the dense retriever.
        lexical: the BM25 retriever.
        rrf_k: fusion constant (60 is the usual choice).
        depth: how many results to take from each side before fusing (at least ``k``).
    """

    name = "hybrid"

    def __init__(self, dense: Retriever, lexical: Retriever, *, rrf_k: int = 60, depth: int = 50) -> None:
        self.dense = dense
        self.lexical = lexical
        self.rrf_k = rrf_k
        self.depth = depth

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        depth = max(k, self.depth)
        return reciprocal_rank_fusion([self.dense.search(query, depth), self.lexical.search(query, depth)], k,
                                      self.rrf_k)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[ScoredChunk]]:
        """``search`` for each query, with each side searched in one batch."""
        depth = max(k, self.depth)
        dense = search_batch(self.dense, queries, depth)
        lexical = search_batch(self.lexical, queries, depth)
        return [reciprocal_rank_fusion([d, lex], k, self.rrf_k) for d, lex in zip(dense, lexical, strict=True)]
