"""The passages an answer was written from, rebuilt from the corpus for people who label it.

The run store keeps the ids of the chunks retrieved, not their text. Chunking is deterministic (same document and
settings give the same chunk ids and text), so the text is rebuilt by chunking the run's corpus with each variant's
settings. The grader saw the first ``generation.context_chunks`` of them; a labeller sees the same. When the corpus
has changed since the run (its fingerprint differs) the passages are still shown, with that warning, because a
chunk id that still exists usually still says the same thing; a chunk id that is gone is named as gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.config.suite import Suite
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import Corpus
from harness.store.records import CaseRecord


@dataclass(frozen=True)
class Passages:
    """Chunk text by variant and chunk id, or the reason there is none."""

    by_variant: dict[str, dict[str, str]] = field(default_factory=dict)
    context_chunks: int = 4
    reason: str | None = None
    warning: str | None = None

    def of(self, record: CaseRecord) -> list[str]:
        """The passages the answer to ``record`` was written from, best first; a vanished chunk is named as gone."""
        texts = self.by_variant.get(record.variant, {})
        return [texts.get(chunk_id, f"(chunk {chunk_id} is no longer in the corpus)")
                for chunk_id in record.retrieval.chunks[: self.context_chunks]]


def rebuild_passages(suite: Suite, corpus: Corpus, run_fingerprint: str | None) -> Passages:
    """Chunk ``corpus`` once per distinct chunking of the suite's generating variants."""
    by_variant: dict[str, dict[str, str]] = {}
    by_label: dict[str, dict[str, str]] = {}
    for variant in suite.variants:
        config = suite.variant_chunking(variant)
        if config.label not in by_label:
            by_label[config.label] = {chunk.id: chunk.text for chunk in chunk_corpus(corpus, config)}
        by_variant[variant.name] = by_label[config.label]
    count = suite.generation.context_chunks if suite.generation is not None else 4
    warning = None
    if run_fingerprint is not None and run_fingerprint != corpus.fingerprint:
        warning = "the corpus has changed since this run; passages are today's text of the chunks it retrieved"
    return Passages(by_variant, count, None, warning)


def no_passages(reason: str) -> Passages:
    return Passages(reason=reason)
