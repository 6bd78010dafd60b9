"""Entry points for the runner and the CLI: ingest a corpus, and build one retriever per suite variant.

Indexes are shared between variants that use the same chunking (BM25) or the same chunking and embedder (dense),
and every dense index is brought up to date incrementally before it is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.suite import ChunkingConfig, EmbedderConfig, Suite, Variant
from harness.corpus.chunking import Chunk, chunk_corpus
from harness.corpus.documents import Corpus
from harness.errors import RetrievalError
from harness.retrieval.base import Retriever, ScoredChunk
from harness.retrieval.bm25 import BM25Index, prune_cache
from harness.retrieval.chroma_store import ChromaStore, DenseIndex, IndexKey, IngestReport, Progress
from harness.retrieval.embedders import Embedder, get_embedder
from harness.retrieval.hybrid import HybridRetriever

DEFAULT_STORE_DIR = Path(".harness") / "index"

Syncer = Callable[[Corpus, ChunkingConfig, EmbedderConfig, DenseIndex], IngestReport]


class DenseRetriever:
    """Chroma cosine search over one collection."""

    name = "dense"

    def __init__(self, index: DenseIndex) -> None:
        self.index = index

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        return self.index.query(query, k)


def open_store(store_dir: str | os.PathLike[str], chroma_url: str | None = None) -> ChromaStore:
    """The Chroma store for a store directory: ``<store_dir>/chroma``, or the server at ``chroma_url``/env."""
    return ChromaStore(Path(store_dir) / "chroma", url=chroma_url)


def ingest(corpus: Corpus, chunking: ChunkingConfig, embedder: Embedder | EmbedderConfig | None,
           store: ChromaStore, *, progress: Progress | None = None) -> IngestReport:
    """Chunk ``corpus`` and bring its collection up to date; only new or changed chunk texts are embedded."""
    model = embedder if isinstance(embedder, Embedder) else get_embedder(embedder)
    key = IndexKey(corpus.name, model.name, chunking.label)
    return store.open(key, model).sync(chunk_corpus(corpus, chunking), progress)


@dataclass
class IndexSet:
    """The indexes for one corpus in one store directory, built on first use and shared.

    Args:
        corpus: the loaded corpus.
        store_dir: where the embedded Chroma store (``chroma/``) and BM25 caches (``bm25/``) live.
        store: the Chroma store; defaults to ``open_store(store_dir)``.
        progress: called as ``progress(done, total)`` while embedding.
        syncer: brings a collection up to date instead of :meth:`DenseIndex.sync` in this process (the Ray
            pipeline of :mod:`harness.retrieval.ray_ingest`).
    """

    corpus: Corpus
    store_dir: Path
    store: ChromaStore | None = None
    progress: Progress | None = None
    syncer: Syncer | None = None
    reports: list[IngestReport] = field(default_factory=list)
    _chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    _dense: dict[tuple[str, str], DenseIndex] = field(default_factory=dict)
    _bm25: dict[str, BM25Index] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store_dir = Path(self.store_dir)

    def chunks(self, chunking: ChunkingConfig) -> list[Chunk]:
        if chunking.label not in self._chunks:
            self._chunks[chunking.label] = chunk_corpus(self.corpus, chunking)
        return self._chunks[chunking.label]

    def dense(self, chunking: ChunkingConfig, embedder: EmbedderConfig) -> DenseIndex:
        """The synced collection for this chunking and embedder."""
        key = (chunking.label, embedder.label)
        if key not in self._dense:
            if self.store is None:
                self.store = open_store(self.store_dir)
            model = get_embedder(embedder)
            index = self.store.open(IndexKey(self.corpus.name, model.name, chunking.label), model)
            if self.syncer is not None:
                self.reports.append(self.syncer(self.corpus, chunking, embedder, index))
            else:
                self.reports.append(index.sync(self.chunks(chunking), self.progress))
            self._dense[key] = index
        return self._dense[key]

    def bm25(self, chunking: ChunkingConfig) -> BM25Index:
        """The BM25 index for this chunking, from the on-disk cache when the chunks are unchanged."""
        if chunking.label not in self._bm25:
            cache = self.store_dir / "bm25" / f"{self.corpus.name}-{chunking.label}"
            index = BM25Index(self.chunks(chunking), cache)
            prune_cache(cache, keep=[index.cache_key])
            self._bm25[chunking.label] = index
        return self._bm25[chunking.label]


RetrieverFactory = Callable[[IndexSet, Suite, Variant], Retriever]


def _dense(indexes: IndexSet, suite: Suite, variant: Variant) -> Retriever:
    return DenseRetriever(indexes.dense(suite.variant_chunking(variant), suite.variant_embedder(variant)))


def _bm25(indexes: IndexSet, suite: Suite, variant: Variant) -> Retriever:
    return indexes.bm25(suite.variant_chunking(variant))


def _hybrid(indexes: IndexSet, suite: Suite, variant: Variant) -> Retriever:
    return HybridRetriever(_dense(indexes, suite, variant), _bm25(indexes, suite, variant), rrf_k=variant.rrf_k)


RETRIEVERS: dict[str, RetrieverFactory] = {"dense": _dense, "bm25": _bm25, "hybrid": _hybrid}


@dataclass(frozen=True)
class RetrievalSetup:
    """What ``build_retrievers`` returns.

    Attributes:
        retrievers: variant name -> retriever.
        reports: one ingest report per dense collection that was synced.
        info: variant name -> description for the run manifest (kind, chunking, embedder, collection).
        indexes: the shared indexes (for ANN fidelity checks and chunk lookups).
    """

    retrievers: dict[str, Retriever]
    reports: list[IngestReport]
    info: dict[str, dict[str, Any]]
    indexes: IndexSet


def build_retrievers(suite: Suite, corpus: Corpus, store_dir: str | os.PathLike[str] = DEFAULT_STORE_DIR, *,
                     chroma_url: str | None = None, progress: Progress | None = None,
                     syncer: Syncer | None = None) -> RetrievalSetup:
    """One retriever per suite variant, with every index it needs ingested (incrementally) first."""
    store = open_store(store_dir, chroma_url) if chroma_url else None
    indexes = IndexSet(corpus, Path(store_dir), store=store, progress=progress, syncer=syncer)
    retrievers: dict[str, Retriever] = {}
    info: dict[str, dict[str, Any]] = {}
    for variant in suite.variants:
        factory = RETRIEVERS.get(variant.retriever)
        if factory is None:
            raise RetrievalError(f"variant {variant.name!r}: unknown retriever {variant.retriever!r}",
                                 hint=f"known retrievers: {', '.join(sorted(RETRIEVERS))}")
        retrievers[variant.name] = factory(indexes, suite, variant)
        chunking, embedder = suite.variant_chunking(variant), suite.variant_embedder(variant)
        entry: dict[str, Any] = {"retriever": variant.retriever, "chunking": chunking.label,
                                 "chunks": len(indexes.chunks(chunking)), "corpus": corpus.name,
                                 "corpus_fingerprint": corpus.fingerprint}
        if variant.retriever != "bm25":
            entry["embedder"] = embedder.label
            entry["collection"] = indexes.dense(chunking, embedder).name
        if variant.retriever == "hybrid":
            entry["rrf_k"] = variant.rrf_k
        info[variant.name] = entry
    return RetrievalSetup(retrievers=retrievers, reports=list(indexes.reports), info=info, indexes=indexes)
