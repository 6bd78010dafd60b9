"""The shipped restoration corpus and its two suites: size, front matter, cross-references and case coverage."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from harness.config.suite import Suite, load_suite
from harness.corpus.documents import KINDS, Corpus, load_corpus

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = ROOT / "corpora" / "restoration"
RETRIEVAL = ROOT / "suites" / "retrieval.yaml"
NIGHTLY = ROOT / "suites" / "nightly.yaml"

CATEGORIES = {"code-section", "code-meaning", "estimate", "supplement", "multi-doc", "jurisdiction", "not-in-corpus"}
JURISDICTIONS = {"Model Code", "Marlow County", "City of Port Ellis", "Brookfield Township", "Industry Standard"}
CLAIM = re.compile(r"^CLM-24-\d{4}$")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def retrieval(corpus: Corpus) -> Suite:
    return load_suite(RETRIEVAL, corpus_ids=set(corpus.ids))


@pytest.fixture(scope="module")
def nightly(corpus: Corpus) -> Suite:
    return load_suite(NIGHTLY, corpus_ids=set(corpus.ids))


def test_corpus_is_large_enough_and_has_every_kind(corpus: Corpus) -> None:
    assert len(corpus) >= 60
    words = sum(len(doc.body.split()) for doc in corpus)
    assert words >= 40_000
    kinds = Counter(doc.kind for doc in corpus)
    assert set(kinds) == set(KINDS)
    assert all(kinds[kind] >= 15 for kind in KINDS), kinds


def test_every_document_has_the_front_matter_its_kind_needs(corpus: Corpus) -> None:
    for doc in corpus:
        assert doc.id and doc.title.strip() and doc.date, doc.path
        assert doc.jurisdiction in JURISDICTIONS, (doc.id, doc.jurisdiction)
        assert Path(doc.path).stem == doc.id
        if doc.kind == "code":
            assert doc.section, f"{doc.id}: code documents need `section`"
        else:
            assert doc.claim and CLAIM.match(doc.claim), f"{doc.id}: {doc.kind} documents need a CLM-24-NNNN `claim`"
            # ids carry the claim digits: est-24-0117-..., sup-24-0117-...
            assert doc.id.split("-")[2] == doc.claim.split("-")[2], doc.id
            assert doc.jurisdiction not in {"Model Code", "Industry Standard"}, doc.id


def test_claims_keep_one_jurisdiction(corpus: Corpus) -> None:
    by_claim: dict[str, set[str]] = {}
    for doc in corpus:
        if doc.claim:
            by_claim.setdefault(doc.claim, set()).add(doc.jurisdiction)
    assert by_claim
    assert all(len(places) == 1 for places in by_claim.values()), by_claim


def test_cross_references_resolve_and_supersession_is_symmetric(corpus: Corpus) -> None:
    ids = set(corpus.ids)
    pairs = 0
    for doc in corpus:
        assert set(doc.references) <= ids, (doc.id, set(doc.references) - ids)
        assert doc.id not in doc.references, doc.id
        if doc.supersedes:
            assert doc.supersedes in ids
            assert corpus.get(doc.supersedes).superseded_by == doc.id, doc.id
            pairs += 1
        if doc.superseded_by:
            assert doc.superseded_by in ids
            assert corpus.get(doc.superseded_by).supersedes == doc.id, doc.id
    assert pairs >= 3  # superseded versions are part of what the suites test


def test_every_supplement_cites_an_estimate_and_a_code_section_that_exist(corpus: Corpus) -> None:
    for doc in corpus:
        if doc.kind != "supplement":
            continue
        cited = [corpus.get(ref) for ref in doc.references]
        assert any(ref.kind == "estimate" and ref.claim == doc.claim for ref in cited), doc.id
        assert any(ref.kind == "code" for ref in cited), doc.id
        assert doc.meta.get("outcome") in {"accepted", "partial", "denied"}, doc.id


@pytest.mark.parametrize("path", [RETRIEVAL, NIGHTLY], ids=["retrieval", "nightly"])
def test_every_relevant_id_exists(corpus: Corpus, path: Path) -> None:
    suite = load_suite(path, corpus_ids=set(corpus.ids))
    for case in suite.cases:
        assert set(case.relevant) <= set(corpus.ids), case.id
        assert case.category in CATEGORIES, (case.id, case.category)


def test_retrieval_suite_covers_every_category(retrieval: Suite) -> None:
    assert retrieval.name == "retrieval"
    assert retrieval.generation is None
    assert not any(case.generate for case in retrieval.cases)
    assert len(retrieval.cases) >= 150
    counts = Counter(case.category for case in retrieval.cases)
    assert set(counts) == CATEGORIES
    assert min(counts.values()) >= 15, counts
    assert {v.retriever for v in retrieval.variants} == {"dense", "bm25", "hybrid"}


def test_case_shapes_follow_their_category(retrieval: Suite) -> None:
    for case in retrieval.cases:
        graded = [doc for doc, grade in case.relevant.items() if grade >= 1]
        if case.category == "not-in-corpus":
            assert case.relevant == {}, case.id
            assert "not" in case.reference.lower(), case.id
        else:
            assert any(grade == 3 for grade in case.relevant.values()), case.id
            assert graded, case.id
        if case.category == "multi-doc":
            assert sum(grade >= 2 for grade in case.relevant.values()) >= 2, case.id
        for needle in case.must_include:
            assert needle.lower() in case.reference.lower(), (case.id, needle)


def test_nightly_generation_cases_and_their_variants(nightly: Suite, retrieval: Suite) -> None:
    assert nightly.generation is not None
    generating = [v.name for v in nightly.generating_variants()]
    assert generating == ["dense", "hybrid"]
    assert {v.name for v in nightly.variants} >= set(nightly.generation.variants or [])
    gen = [case for case in nightly.cases if case.generate]
    assert len(gen) >= 10
    answerable = [case for case in gen if case.relevant]
    assert answerable and all(case.must_include for case in answerable)
    assert all(case.reference.strip() for case in gen)
    assert any(case.category == "not-in-corpus" for case in gen)  # abstention is tested too
    # the retrieval-only cases are copies of retrieval.yaml cases, not variants of them
    by_id = {case.id: case for case in retrieval.cases}
    copied = [case for case in nightly.cases if not case.generate]
    assert copied
    for case in copied:
        assert case.id in by_id, case.id
        original = by_id[case.id]
        assert (case.question, case.relevant, case.category) == (original.question, original.relevant,
                                                                  original.category), case.id
