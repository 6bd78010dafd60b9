"""Questions are embedded once per embedder, each as it would be alone, and batched retrieval ranks exactly as one
query at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from harness.config.suite import Case, ChunkingConfig, EmbedderConfig, Suite, Variant
from harness.corpus.documents import load_corpus
from harness.retrieval.base import search_batch
from harness.retrieval.build import RetrievalSetup, build_retrievers
from harness.retrieval.embedders import Embedder, embed_each, get_embedder
from harness.retrieval.query_vectors import QueryVectors
from harness.run.doc_ranking import rank_documents, rank_documents_many
from harness.run.fidelity import suite_ann_fidelity
from harness.run.runner import RunParts, run_suite
from harness.store.records import Manifest
from harness.store.store import RunStore

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
QUESTIONS = [
    "What does R905.2.8.5 require for drip edge?",
    "How many fasteners per strip shingle?",
    "Is a dehumidifier billed per day?",
    "What does R905.2.8.5 require for drip edge?",  # asked twice: embedded once
    "Which underlayment applies on a low slope roof?",
]


def _suite() -> Suite:
    relevant = {"est-clm-24-0117-carrier": 2, "code-r905-1-2-model": 1}
    cases = [Case(id=f"c{i}", question=q, category="code-section", relevant=relevant if i % 2 else {})
             for i, q in enumerate(QUESTIONS)]
    return Suite(cases=cases, chunking=ChunkingConfig(max_chars=600, overlap=150),
                 variants=[Variant(name="dense"), Variant(name="lexical", retriever="bm25"),
                           Variant(name="fused", retriever="hybrid")])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> RetrievalSetup:
    return build_retrievers(_suite(), load_corpus(MINI), tmp_path_factory.mktemp("store"))


def test_batched_searches_equal_single_searches(setup: RetrievalSetup) -> None:
    distinct = list(dict.fromkeys(QUESTIONS))
    for name, retriever in setup.retrievers.items():
        batched = search_batch(retriever, distinct, 7)
        for question, hits in zip(distinct, batched, strict=True):
            alone = retriever.search(question, 7)
            assert [h.chunk_id for h in hits] == [h.chunk_id for h in alone], name
            assert [h.score for h in hits] == [h.score for h in alone], name
        many = rank_documents_many(retriever, distinct, 3)
        for question, documents in zip(distinct, many, strict=True):
            assert documents == rank_documents(retriever, question, 3), name


def test_each_question_is_embedded_once_for_fidelity_and_every_dense_variant(tmp_path: Path) -> None:
    suite = _suite()
    setup = build_retrievers(suite, load_corpus(MINI), tmp_path / "store")
    vectors = setup.indexes.query_vectors(suite.embedder)
    embedded = setup.indexes.embed_queries([case.question for case in suite.cases])
    distinct = len(set(QUESTIONS))
    assert embedded == {suite.embedder.label: distinct}
    suite_ann_fidelity(suite, setup)
    store = RunStore.create(tmp_path / "run", Manifest(run_id="run", pid=0))
    asyncio.run(run_suite(RunParts(suite=suite, retrievers=setup.retrievers), store))
    assert vectors.embedded == distinct  # fidelity, dense and hybrid reused the batch
    records = list(store.records())
    assert len(records) == len(QUESTIONS) * 3
    # The vectors are the embedder's own: exactly what the question gets embedded alone.
    direct = get_embedder(suite.embedder).embed([QUESTIONS[1]])[0]
    assert np.array_equal(direct, vectors.get(QUESTIONS[1]))


# Short texts whose products, on a 2-core machine, sum differently over one torch thread and two.
SHORT = ["Line 19 was addressed in a separate letter.", "and ran until about 6 a.m.", "Where step flashing is used: 1."]


def _alone(embedder: Embedder, text: str, backend: str) -> np.ndarray:
    """The oracle: the library's own encode of the text by itself; torch in one thread, as queries run."""
    if backend != "torch":
        return embedder.embed([text])[0]
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return embedder.embed([text])[0]
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_prefetched_vectors_are_bit_identical_to_each_question_alone(backend: str) -> None:
    """A batch pads (torch) or shares an activation scale (int8); prefetching must not, or near-tied chunks swap
    between a run and its shards, resumes or one-off searches."""
    embedder = get_embedder(EmbedderConfig(backend=backend))
    texts = [*dict.fromkeys(QUESTIONS), *SHORT, "a much longer question about the ice and water shield required at "
             "the eaves of a low slope roof in a cold climate zone, and who pays for it"]
    prefetched = QueryVectors(embedder)
    assert prefetched.prefetch(texts) == len(texts)
    for text in texts:
        assert np.array_equal(prefetched.get(text), _alone(embedder, text, backend)), text
        assert np.array_equal(prefetched.get(text), embed_each(embedder, [text])[0]), text


def test_batched_records_match_one_case_at_a_time(setup: RetrievalSetup, tmp_path: Path) -> None:
    """The runner's blocks score each case exactly as a lone ``evaluate`` over that case would."""
    from harness.metrics.retrieval import evaluate

    suite = _suite()
    store = RunStore.create(tmp_path / "run", Manifest(run_id="run", pid=0))
    asyncio.run(run_suite(RunParts(suite=suite, retrievers=setup.retrievers), store))
    by_case = {case.id: case for case in suite.cases}
    for record in store.records():
        case = by_case[record.case_id]
        alone = rank_documents(setup.retrievers[record.variant], case.question, suite.k)
        assert record.retrieval.ranked == alone.ranked
        if any(g > 0 for g in case.relevant.values()):
            frame = evaluate({case.id: case.relevant}, {case.id: dict(alone.ranked)}, suite.metrics)
            assert record.retrieval.metrics == {m: float(frame.at[case.id, m]) for m in suite.metrics}
        else:
            assert set(record.retrieval.metrics.values()) == {None}
