"""Rank documents from a chunk retriever: fetch chunks until ``k`` distinct documents (or the corpus runs out).

Several chunks of one document often crowd the top of a chunk ranking, so a fixed fetch of ``3k`` chunks can hold
fewer than ``k`` documents, and recall@k and nDCG@k are then computed on a short list. A document's score is its best
chunk's score (MaxP, :func:`~harness.metrics.retrieval.doc_run_from_chunks`); documents are ordered as trec_eval
orders them (score descending, ties by document id descending), so the cut at ``k`` keeps what trec_eval would.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.metrics.retrieval import doc_run_from_chunks
from harness.retrieval.base import Retriever, ScoredChunk

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
    depth = max(1, k * FIRST_FETCH_PER_DOCUMENT)
    while True:
        hits = list(retriever.search(query, depth))
        exhausted = len(hits) < depth
        documents = doc_run_from_chunks((hit.doc_id, hit.score) for hit in hits)
        if len(documents) >= k or exhausted:
            break
        depth *= 2
    ranked = sorted(documents.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k]
    return DocumentRanking(ranked=ranked, hits=hits, chunks_fetched=depth, exhausted=exhausted)
