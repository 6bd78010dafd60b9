"""Rank documents from a chunk retriever: fetch chunks until ``k`` distinct documents (or the corpus runs out).

Several chunks of one document often crowd the top of a chunk ranking, so a fixed fetch of ``3k`` chunks can hold
fewer than ``k`` documents, and recall@k and nDCG@k are then computed on a short list. A document's score is its best
chunk's score (MaxP, :func:`~harness.metrics.retrieval.doc_run_from_chunks`); documents are ordered as trec_eval
orders them (score descending, ties by document id descending), so the cut at ``k`` keeps what trec_eval would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.metrics.retrieval import doc_run_from_chunks
from harness.retrieval.base import Retriever, ScoredChunk, search_batch

FIRST_FETCH_PER_DOCUMENT = 3
"""The first fetch asks for this many chunks per wanted document; each further fetch doubles it."""


@dataclass(frozen=True)
class DocumentRanking:
    """The scored document ranking and the chunks it came from.

    Attributes:
        ranked: ``(doc id, score)``, best first, at most ``k`` long; shorter only when ``exhausted``.
        hits: every chunk of the last fetch, best first.
        chunks_fetched: how many chunks the last fetch asked for.
        exhausted: the retriever returned fewer chunks than asked: there are no more to rank.
    """

    ranked: list[tuple[str, float]]
    hits: list[ScoredChunk]
    chunks_fetched: int
    exhausted: bool


def rank_documents(retriever: Retriever, query: str, k: int) -> DocumentRanking:
    """Fetch deeper (doubling) until the chunks cover ``k`` documents or the retriever has no more to give."""
    return rank_documents_many(retriever, [query], k)[0]


def rank_documents_many(retriever: Retriever, queries: Sequence[str], k: int) -> list[DocumentRanking]:
    """:func:`rank_documents` for each query, each round of fetches sent as one batch.

    Every query goes through the same fetches it would alone (first ``3k`` chunks, then doubling while it covers
    fewer than ``k`` documents), so the rankings are the same; only the round trips are shared.
    """
    out: dict[int, DocumentRanking] = {}
    pending = list(range(len(queries)))
    depth = max(1, k * FIRST_FETCH_PER_DOCUMENT)
    while pending:
        fetched = search_batch(retriever, [queries[i] for i in pending], depth)
        deeper: list[int] = []
        for i, hits in zip(pending, fetched, strict=True):
            exhausted = len(hits) < depth
            documents = doc_run_from_chunks((hit.doc_id, hit.score) for hit in hits)
            if len(documents) >= k or exhausted:
                ranked = sorted(documents.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]
                out[i] = DocumentRanking(ranked=ranked, hits=list(hits), chunks_fetched=depth, exhausted=exhausted)
            else:
                deeper.append(i)
        pending = deeper
        depth *= 2
    return [out[i] for i in range(len(queries))]
