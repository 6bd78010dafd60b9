"""BM25, RRF fusion and the three retrievers on the fixture corpus, built the way the runner builds them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.config.suite import Case, ChunkingConfig, Suite, Variant
from harness.corpus.chunking import Chunk, chunk_corpus
from harness.corpus.documents import load_corpus
from harness.retrieval.base import Retriever, ScoredChunk
from harness.retrieval.bm25 import BM25Index, tokenise
from harness.retrieval.build import RetrievalSetup, build_retrievers
from harness.retrieval.hybrid import reciprocal_rank_fusion

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
CHUNKING = ChunkingConfig(max_chars=600, overlap=150)


def _chunk(cid: str, text: str) -> Chunk:
    return Chunk(id=cid, doc_id=cid.split("#")[0], index=0, text=text, heading_path=("t",), content_hash=text,
                 start=0, end=len(text))


def _hit(cid: str, rank: int) -> ScoredChunk:
    return ScoredChunk(chunk_id=cid, doc_id=cid.split("#")[0], score=1.0 / rank, rank=rank)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> RetrievalSetup:
    suite = Suite(cases=[Case(id="c1", question="q", category="code-section")], chunking=CHUNKING,
                  variants=[Variant(name="dense"), Variant(name="lexical", retriever="bm25"),
                            Variant(name="fused", retriever="hybrid", rrf_k=30)])
    return build_retrievers(suite, load_corpus(MINI), tmp_path_factory.mktemp("store"))


# --- tokeniser ---------------------------------------------------------------------------------------------------

def test_tokeniser_keeps_section_numbers_and_their_parents() -> None:
    assert tokenise("See R905.1.2.") == ["see", "r905.1.2", "r905.1", "r905"]
    assert tokenise("S500 §10.5.1") == ["s500", "10.5.1", "10.5", "10"]
    assert tokenise("RCV 6840.00") == ["rcv", "6840.00"]  # money is not a section number


def test_tokeniser_joins_trade_codes_and_strips_plurals() -> None:
    tokens = tokenise("Add RFG 240S shingles and WTR DHM dehumidifiers for the barriers")
    assert "rfg_240s" in tokens and "wtr_dhm" in tokens
    assert {"rfg", "240s", "shingle", "dehumidifier", "barrier"} <= set(tokens)
    assert "the" not in tokens and "and" not in tokens
    assert tokenise("CLM-24-0117 6/12") == ["clm-24-0117", "clm", "24", "0117", "6/12", "6", "12"]


# --- BM25 ---------------------------------------------------------------------------------------------------------

def _lucene_bm25(query: list[str], docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Textbook Lucene BM25, written out independently of bm25s."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    scores = []
    for doc in docs:
        total = 0.0
        for term in query:
            df = sum(1 for d in docs if term in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(term)
            total += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return scores


def test_bm25_scores_match_the_formula() -> None:
    chunks = [_chunk("a#0", "ice barrier ice barrier eave"), _chunk("b#0", "drip edge eave rake"),
              _chunk("c#0", "valley metal and ice dam"), _chunk("d#0", "gutter apron")]
    index = BM25Index(chunks)
    expected = _lucene_bm25(tokenise("ice eave"), [tokenise(c.text) for c in chunks])
    assert np.allclose(index.scores("ice eave"), expected, atol=1e-5)
    hits = index.search("ice eave", 10)
    # b#0 and c#0 tie (one df=2 term each, same length): the chunk id breaks it; d#0 scores 0 and is left out
    assert [h.chunk_id for h in hits] == ["a#0", "b#0", "c#0"]
    assert [h.score for h in hits] == pytest.approx([expected[0], expected[1], expected[2]])
    assert all(isinstance(h.score, float) for h in hits)
    assert index.search("zebra", 5) == [] and index.search("", 5) == []


def test_bm25_cache_is_reused_and_invalidated(tmp_path: Path) -> None:
    chunks = chunk_corpus(load_corpus(MINI), CHUNKING)
    first = BM25Index(chunks, tmp_path)
    assert not first.loaded_from_cache
    second = BM25Index(chunks, tmp_path)
    assert second.loaded_from_cache and second.cache_key == first.cache_key
    query = "R905.1.2 ice barrier Marlow County"
    assert np.array_equal(first.scores(query), second.scores(query))
    edited = [*chunks[:-1], _chunk(chunks[-1].id, chunks[-1].text + " extra words")]
    third = BM25Index(edited, tmp_path)
    assert not third.loaded_from_cache and third.cache_key != first.cache_key


def test_bm25_finds_section_numbers_and_trade_codes(setup: RetrievalSetup) -> None:
    bm25 = setup.retrievers["lexical"]
    assert bm25.search("What does S500 10.5.1 say?", 3)[0].doc_id == "code-s500-drying-industry"
    top_docs = {h.doc_id for h in bm25.search("RFG IWS", 2)}
    assert top_docs == {"est-clm-24-0117-contractor", "sup-clm-24-0117-ice-barrier"}
    assert bm25.search("GEN PERMIT building permit fee", 1)[0].doc_id == "est-clm-24-0117-contractor"


# --- fusion -------------------------------------------------------------------------------------------------------

def test_rrf_matches_hand_computation() -> None:
    dense = [_hit("a#0", 1), _hit("b#0", 2), _hit("c#0", 3)]
    lexical = [_hit("c#0", 1), _hit("a#0", 2), _hit("d#0", 3)]
    fused = reciprocal_rank_fusion([dense, lexical], k=4, rrf_k=60)
    expected = {"a#0": 1 / 61 + 1 / 62, "c#0": 1 / 63 + 1 / 61, "b#0": 1 / 62, "d#0": 1 / 63}
    assert [h.chunk_id for h in fused] == ["a#0", "c#0", "b#0", "d#0"]
    assert [h.score for h in fused] == pytest.approx([expected[h.chunk_id] for h in fused])
    assert [h.rank for h in fused] == [1, 2, 3, 4]


def test_rrf_ties_are_deterministic() -> None:
    # x and y both score 1/61 + 1/62; x reached rank 1 somewhere, so does y: then chunk id decides.
    first = reciprocal_rank_fusion([[_hit("y#0", 1), _hit("x#0", 2)], [_hit("x#0", 1), _hit("y#0", 2)]], k=2)
    second = reciprocal_rank_fusion([[_hit("x#0", 1), _hit("y#0", 2)], [_hit("y#0", 1), _hit("x#0", 2)]], k=2)
    assert [h.chunk_id for h in first] == [h.chunk_id for h in second] == ["x#0", "y#0"]
    # equal fused score, different best rank: the one that was ranked first somewhere wins
    tie = reciprocal_rank_fusion([[_hit("p#0", 1)], [_hit("q#0", 1)], [_hit("z#0", 1)]], k=3)
    assert [h.chunk_id for h in tie] == ["p#0", "q#0", "z#0"]


# --- the three retrievers ---------------------------------------------------------------------------------------

def test_setup_has_one_retriever_per_variant(setup: RetrievalSetup) -> None:
    assert set(setup.retrievers) == {"dense", "lexical", "fused"}
    assert all(isinstance(r, Retriever) for r in setup.retrievers.values())
    assert [r.name for r in setup.retrievers.values()] == ["dense", "bm25", "hybrid"]
    assert len(setup.reports) == 1  # dense and hybrid share one collection
    assert setup.info["fused"]["collection"] == setup.info["dense"]["collection"]
    assert setup.info["fused"]["rrf_k"] == 30 and "embedder" not in setup.info["lexical"]


@pytest.mark.parametrize("variant", ["dense", "lexical", "fused"])
def test_retrievers_rank_the_obvious_document_first(setup: RetrievalSetup, variant: str) -> None:
    retriever = setup.retrievers[variant]
    cases = {
        "How many air movers for each linear foot of wet wall?": {"code-s500-drying-industry"},
        "Port Ellis ice barrier amendment for the high wind zone": {"code-r905-1-2-port-ellis"},
        "What does R905.1.2 require in Marlow County?": {"code-r905-1-2-marlow", "code-r905-1-2-marlow-2019"},
    }
    for query, expected in cases.items():
        hits = retriever.search(query, 5)
        assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0].doc_id in expected, (variant, query, [h.chunk_id for h in hits])
        assert hits[0].text and hits[0].chunk_id.startswith(hits[0].doc_id + "#")


def test_hybrid_fuses_both_lists(setup: RetrievalSetup) -> None:
    query = "RFG IWS ice and water barrier quantity"
    dense = [h.chunk_id for h in setup.retrievers["dense"].search(query, 50)]
    lexical = [h.chunk_id for h in setup.retrievers["lexical"].search(query, 50)]
    fused = setup.retrievers["fused"].search(query, 5)
    for hit in fused:
        ranks = [lst.index(hit.chunk_id) + 1 for lst in (dense, lexical) if hit.chunk_id in lst]
        assert hit.score == pytest.approx(sum(1 / (30 + r) for r in ranks))


def test_rebuild_is_incremental(setup: RetrievalSetup) -> None:
    suite = Suite(cases=[Case(id="c1", question="q", category="x")], chunking=CHUNKING,
                  variants=[Variant(name="h", retriever="hybrid")])
    again = build_retrievers(suite, load_corpus(MINI), setup.indexes.store_dir)
    assert [r.embedded for r in again.reports] == [0]
    assert again.indexes.bm25(CHUNKING).loaded_from_cache
