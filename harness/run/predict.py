"""Record the cheap quality predictors that need the suite's embedder or the retrieved passages, per generation.

Kept beside the runner rather than in it: the metrics are pure (:mod:`harness.metrics.predictors`); this module only
supplies their inputs and writes the values into each answer's ``answer_metrics``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import numpy as np

from harness.config.suite import Case
from harness.metrics.predictors import context_support, embedding_cosine
from harness.retrieval.base import ScoredChunk
from harness.store.records import GenerationRecord

Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> one embedding row each (the suite's embedder)."""

# One embedding call at a time: the model is shared, and its forward pass runs off the event loop so that racing
# hosts' latencies are not skewed by a blocked loop.
_EMBED_LOCK = threading.Lock()


def _embed_serially(embed: Embed, texts: list[str]) -> np.ndarray:
    with _EMBED_LOCK:
        return embed(texts)


async def record_predictors(
    generations: dict[str, GenerationRecord], case: Case, hits: Sequence[ScoredChunk], embed: Embed | None
) -> None:
    """Add ``embedding_cosine`` and ``context_support`` to every answered tier's metrics, in place.

    ``embedding_cosine`` is unmeasured (None) for cases with no reference or not answerable from the corpus (as the
    text metrics are), and when no embedder is available.
    """
    answered = {tier: g for tier, g in generations.items() if g.status == "ok" and g.text is not None}
    if not answered:
        return
    passages = [hit.text for hit in hits]
    answerable = any(grade > 0 for grade in case.relevant.values())
    cosines: dict[str, float | None] = dict.fromkeys(answered)
    if embed is not None and answerable and case.reference:
        texts = [case.reference, *(g.text or "" for g in answered.values())]
        vectors = await asyncio.to_thread(_embed_serially, embed, texts)
        for row, tier in enumerate(answered, start=1):
            empty = not (answered[tier].text or "").strip()
            cosines[tier] = None if empty else embedding_cosine(vectors[row], vectors[0])
    for tier, generation in answered.items():
        generation.answer_metrics["embedding_cosine"] = cosines[tier]
        generation.answer_metrics["context_support"] = context_support(generation.text or "", passages)
