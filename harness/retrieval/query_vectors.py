"""Query vectors embedded once: every distinct text an embedder is asked about during a run, kept by text.

A run asks the same question of several searches: ANN fidelity (HNSW and exact), the dense variant, the hybrid
variant, and the grading phase's context lookup on resume. Embedding it for each of them, one text at a time, was
most of a retrieval-only run's time. :meth:`QueryVectors.prefetch` embeds all distinct texts before the searches
start; :meth:`QueryVectors.get` then only looks them up (and embeds, once, a text nobody prefetched). Each text gets
the vector it would get alone (:func:`~harness.retrieval.embedders.embed_each`), so a record is the same whether its
question was prefetched with thousands of others, searched by itself, or on another shard.

The vectors are a few KB each (384 floats for MiniLM), so even 100,000 distinct questions fit in 150 MB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

from harness.retrieval.embedders import Embedder, embed_each

__all__ = ["QueryVectors"]


class QueryVectors:
    """Unit-length query vectors of one embedder, each text embedded at most once.

    Args:
        embedder: the embedder; its ``batch_size`` (when it has one) sets how many texts go in one call.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.embedded = 0  # texts sent to the embedder (for benches and tests: each distinct text once)

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: object) -> bool:
        return text in self._vectors

    def prefetch(self, texts: Iterable[str]) -> int:
        """Embed, in batches, every distinct text not embedded yet; returns how many were embedded."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
            if not missing:
                return 0
            step = max(1, int(getattr(self.embedder, "batch_size", 64))) * 4
            for start in range(0, len(missing), step):
                batch = missing[start:start + step]
                vectors = embed_each(self.embedder, batch)  # unit rows, as each would be alone
                self._vectors.update(zip(batch, vectors, strict=True))
            self.embedded += len(missing)
            return len(missing)

    def get(self, text: str) -> np.ndarray:
        """The vector of one text (embedded now if nobody prefetched it)."""
        vector = self._vectors.get(text)
        if vector is None:
            self.prefetch([text])
            vector = self._vectors[text]
        return vector

    def many(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` as one ``(len(texts), dimension)`` matrix; missing texts are embedded together."""
        self.prefetch(texts)
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])
