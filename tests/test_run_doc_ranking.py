"""The scored document ranking holds k distinct documents even when a few long documents crowd the chunk ranking.

A real BM25 index over a corpus where two long documents own most matching chunks: a fixed fetch of 3k chunks would
hold only two documents. The runner's recorded ranking and metrics are checked against pytrec_eval on an independent,
exhaustive document run (every chunk scored, each document at its best chunk).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytrec_eval

from harness.config.suite import Case, Suite, Variant
from harness.corpus.chunking import Chunk
from harness.retrieval.bm25 import BM25Index
from harness.run.doc_ranking import rank_documents
from harness.run.runner import RunParts, run_suite
from harness.store.store import RunStore

QUERY = "ice barrier eaves valley underlayment"
K = 5


def chunk(doc_id: str, index: int, text: str) -> Chunk:
    return Chunk(id=f"{doc_id}#{index}", doc_id=doc_id, index=index, text=text, heading_path=(doc_id,),
                 content_hash=f"{doc_id}-{index}", start=0, end=len(text))


def clustered_corpus() -> list[Chunk]:
    chunks = []
    for doc in ("long-a", "long-b"):  # many strongly matching chunks each
        chunks += [chunk(doc, i, f"ice barrier at the eaves and valley, underlayment detail {i} for {doc}")
                   for i in range(14)]
    for i in range(40):  # one weaker match each, with varied filler so scores differ
        filler = " ".join(["roofing"] * (i + 1))
        chunks.append(chunk(f"short-{i}", 0, f"ice barrier note {filler} shingles fasteners"))
    chunks += [chunk(f"other-{i}", 0, f"drywall paint trim baseboard {i}") for i in range(5)]
    return chunks


def exhaustive_doc_run(index: BM25Index, query: str) -> dict[str, float]:
    """Every chunk scored; a document keeps its best chunk's score; non-matching chunks are not retrieved."""
    scores = index.scores(query)
    run: dict[str, float] = {}
    for chunk_, score in zip(index.chunks, scores, strict=True):
        if score > 0:
            run[chunk_.doc_id] = max(run.get(chunk_.doc_id, float("-inf")), float(score))
    return run


def test_chunks_that_cluster_still_give_k_documents_scored_like_trec_eval(tmp_path: Path) -> None:
    index = BM25Index(clustered_corpus())
    assert len({hit.doc_id for hit in index.search(QUERY, 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {"long-a": 3, "short-2": 2, "short-5": 1, "other-1": 1}
    case = Case(id="clustered", question=QUERY, reference="x", relevant=relevant, category="code")
    metrics = ["recall@5", "ndcg@5", "precision@5", "map", "mrr"]
    suite = Suite(name="s", cases=[case], variants=[Variant(name="bm25", retriever="bm25")], metrics=metrics, k=K)
    store = RunStore.create(tmp_path / "run")
    asyncio.run(run_suite(RunParts(suite=suite, retrievers={"bm25": index}), store))
    [record] = list(store.records())
    retrieval = record.retrieval

    assert len(retrieval.ranked) == K and len({doc for doc, _ in retrieval.ranked}) == K
    assert retrieval.chunks_fetched is not None and retrieval.chunks_fetched > 3 * K and not retrieval.exhausted
    full = exhaustive_doc_run(index, QUERY)
    expected_top = sorted(full.items(), key=lambda item: (item[1], item[0]), reverse=True)[:K]
    assert [doc for doc, _ in retrieval.ranked] == [doc for doc, _ in expected_top]
    assert [score for _, score in retrieval.ranked] == pytest.approx([score for _, score in expected_top])

    trec = {"recall@5": "recall_5", "ndcg@5": "ndcg_cut_5", "precision@5": "P_5"}
    oracle = pytrec_eval.RelevanceEvaluator({"q": relevant}, set(trec.values())).evaluate({"q": full})["q"]
    for ours, theirs in trec.items():
        assert retrieval.metrics[ours] == pytest.approx(oracle[theirs], abs=1e-9), ours
    assert retrieval.metrics["recall@5"] > 0  # short documents reached the top 5 at all


def test_a_corpus_with_fewer_matching_documents_than_k_is_exhausted() -> None:
    chunks = [chunk("long-a", i, f"ice barrier valley {i}") for i in range(9)]
    chunks += [chunk("short-0", 0, "ice barrier"), chunk("other-0", 0, "paint trim")]
    ranking = rank_documents(BM25Index(chunks), QUERY, K)
    assert ranking.exhausted and [doc for doc, _ in ranking.ranked] == ["long-a", "short-0"]
    assert len(ranking.hits) == 10  # every matching chunk, and no more
