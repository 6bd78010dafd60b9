"""What every retriever returns, and the Retriever protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ScoredChunk:
    """One retrieved chunk.

    Attributes:
        chunk_id: ``<doc id>#<n>``.
        doc_id: the document it came from.
        score: higher is better; cosine similarity (dense), BM25 score, or fused RRF score (hybrid).
        rank: 1-based position in the result list.
        text: the chunk text (heading path + content), for generation context.
    """

    chunk_id: str
    doc_id: str
    score: float
    rank: int
    text: str = ""


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks chunks for a query."""

    @property
    def name(self) -> str: ...

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        """The best ``k`` chunks, best first, ranks 1..k."""
        ...


@runtime_checkable
class BatchRetriever(Retriever, Protocol):
    """A retriever that can rank many queries in one call (fewer round trips, one thread hop)."""

    def search_many(self, queries: Sequence[str], k: int) -> list[list[ScoredChunk]]:
        """``search(query, k)`` for each query, in order."""
        ...


def search_batch(retriever: Retriever, queries: Sequence[str], k: int) -> list[list[ScoredChunk]]:
    """``retriever.search`` for each query: in one batch when the retriever can, else one at a time."""
    if isinstance(retriever, BatchRetriever):
        return retriever.search_many(queries, k)
    return [list(retriever.search(query, k)) for query in queries]


def ranked(items: Sequence[tuple[str, str, float, str]], k: int) -> list[ScoredChunk]:
    """Sort ``(chunk_id, doc_id, score, text)`` by score (desc), then chunk id, and number them from 1."""
    order = sorted(items, key=lambda item: (-item[2], item[0]))[:k]
    return [ScoredChunk(chunk_id=c, doc_id=d, score=float(s), rank=i, text=t) for i, (c, d, s, t) in
            enumerate(order, start=1)]
