"""Which documents each answer's prompt carried, as a frame: the input of the retrieval-or-generation attribution.

One row per case × variant × tier with a generation record. ``context_docs`` are the documents of the chunks the
prompt carried (a chunk id is ``<doc id>#<n>``), in prompt order; ``best_context_grade`` is the highest ``relevant:``
grade among them (0 when none is relevant).

Runs before store version 3 did not record the prompt's chunks. For them the first ``generation.context_chunks``
chunks fetched stand in (the passages offered to the prompt, some of which the context budget may have cut), and
``context_source`` says ``offered`` instead of ``recorded``, so a report can say which it used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness.store.records import CaseRecord

CONTEXT_COLUMNS = [
    "case_id", "variant", "tier", "context_docs", "context_source", "best_context_grade", "best_relevant_grade",
]  # fmt: skip


def doc_of_chunk(chunk_id: str) -> str:
    """The document id of a chunk id (``<doc id>#<n>``); an id without ``#`` is a document id already."""
    doc, sep, _ = chunk_id.rpartition("#")
    return doc if sep else chunk_id


def context_frame(records: Iterable[CaseRecord], offered_chunks: int | None = None) -> pd.DataFrame:
    """One row per answer with the documents its prompt carried and the best relevance grade among them.

    Args:
        records: the run's case records.
        offered_chunks: the suite's ``generation.context_chunks``, for records that did not record their context
            (None: every fetched chunk stands in).
    """
    rows: list[dict[str, Any]] = []
    for record in records:
        for tier, generation in record.generations.items():
            if generation.context is not None:
                chunks, source = generation.context, "recorded"
            else:
                fetched = record.retrieval.chunks
                chunks, source = (fetched if offered_chunks is None else fetched[:offered_chunks]), "offered"
            docs = list(dict.fromkeys(doc_of_chunk(chunk) for chunk in chunks))
            rows.append({
                "case_id": record.case_id,
                "variant": record.variant,
                "tier": tier,
                "context_docs": tuple(docs),
                "context_source": source,
                "best_context_grade": max((record.relevant.get(doc, 0) for doc in docs), default=0),
                "best_relevant_grade": max(record.relevant.values(), default=0),
            })
    return pd.DataFrame(rows, columns=CONTEXT_COLUMNS)
