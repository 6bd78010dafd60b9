"""Retrieval metrics against trec_eval (through pytrec_eval) and against hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _trec import needs_trec, oracle, our_names, pytrec_eval, random_case, trec_measures

from harness.errors import InputError
from harness.metrics.retrieval import METRICS, ann_fidelity, doc_run_from_chunks, evaluate, parse_metric


@needs_trec
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_matches_trec_eval_on_random_runs(seed: int) -> None:
    qrels, run = random_case(seed)
    trec = pytrec_eval.RelevanceEvaluator(qrels, trec_measures()).evaluate(run)
    names = our_names()
    frame = evaluate(qrels, run, names)

    assert set(frame.index) == set(trec)
    assert list(frame.columns) == names
    for qid, values in trec.items():
        for name in names:
            assert frame.at[qid, name] == pytest.approx(oracle(values, name), abs=1e-6), (qid, name)


@needs_trec
def test_trec_eval_scores_the_same_queries() -> None:
    qrels = {"zeros": {"a": 0, "b": 0}, "empty_qrels": {}, "empty_run": {"a": 1}, "only_qrels": {"a": 1},
             "ok": {"a": 1}}
    run = {"zeros": {"a": 1.0}, "empty_qrels": {"a": 1.0}, "empty_run": {}, "only_run": {"a": 1.0},
           "ok": {"b": 2.0, "a": 1.0}}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    frame = evaluate(qrels, run, ["mrr", "recall@5"])

    assert set(trec) == {"zeros", "empty_run", "ok"}
    assert list(frame.index) == ["zeros", "empty_run", "ok"]  # run order
    assert frame.index.name == "query_id"
    assert frame.loc["zeros"].tolist() == [0.0, 0.0]
    assert frame.loc["empty_run"].tolist() == [0.0, 0.0]
    assert frame.loc["ok"].tolist() == [0.5, 1.0]


@needs_trec
def test_ties_break_by_doc_id_descending_like_trec_eval() -> None:
    run = {"q": {"a": 1.0, "c": 1.0, "b": 1.0, "B": 1.0, "é": 1.0, "ab": 1.0}}
    # Descending code point order: é, c, b, ab, a, B.
    expected_rank = {"é": 1, "c": 2, "b": 3, "ab": 4, "a": 5, "B": 6}
    for doc, rank in expected_rank.items():
        qrels = {"q": {doc: 1}}
        ours = evaluate(qrels, run, ["mrr"]).at["q", "mrr"]
        trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
        assert ours == pytest.approx(1 / rank)
        assert trec == pytest.approx(1 / rank)


@needs_trec
def test_scores_tie_at_float32_precision_like_trec_eval() -> None:
    qrels = {"q": {"a": 1}}
    for bump, rank in [(1e-12, 2), (5e-8, 2), (1e-6, 1)]:
        run = {"q": {"a": 1.0 + bump, "b": 1.0}}  # a tie puts "b" first (descending doc id)
        trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
        assert trec == pytest.approx(1 / rank)
        assert evaluate(qrels, run, ["mrr"]).at["q", "mrr"] == pytest.approx(1 / rank)
    # Negative zero equals zero, so it ties too.
    run = {"q": {"a": -0.0, "b": 0.0}}
    assert evaluate(qrels, run, ["mrr"]).at["q", "mrr"] == 0.5


@needs_trec
def test_long_runs_are_not_cut_at_1000() -> None:
    qrels = {"q": {"d1500": 1}}
    run = {"q": {f"d{i}": float(-i) for i in range(2000)}}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"]
    assert trec == pytest.approx(1 / 1501)
    assert evaluate(qrels, run, ["mrr"]).at["q", "mrr"] == pytest.approx(1 / 1501)


def test_hand_worked_example() -> None:
    # Ranked: d1 (grade 0), d2 (3), d3 (unjudged), d4 (1). Relevant: d2, d4, d5 (never retrieved). R = 3.
    qrels = {"q": {"d1": 0, "d2": 3, "d4": 1, "d5": 2}}
    run = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6}}
    names = ["recall@2", "recall@10", "precision@2", "precision@10", "hit@1", "hit@2", "mrr", "mrr@1", "map",
             "ndcg@2", "ndcg"]
    row = evaluate(qrels, run, names).loc["q"]

    assert row["recall@2"] == pytest.approx(1 / 3)
    assert row["recall@10"] == pytest.approx(2 / 3)
    assert row["precision@2"] == pytest.approx(1 / 2)
    assert row["precision@10"] == pytest.approx(2 / 10)  # divides by k, not by the 4 retrieved
    assert row["hit@1"] == 0.0
    assert row["hit@2"] == 1.0
    assert row["mrr"] == pytest.approx(1 / 2)
    assert row["mrr@1"] == 0.0
    assert row["map"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    # DCG@2 = 3/log2(3); ideal@2 = 3/log2(2) + 2/log2(3).
    assert row["ndcg@2"] == pytest.approx((3 / math.log2(3)) / (3 + 2 / math.log2(3)))
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert row["ndcg"] == pytest.approx(dcg / ideal)


def test_frame_shape_and_dtype() -> None:
    frame = evaluate({"a": {"x": 1}, "b": {"y": 1}}, {"b": {"y": 1.0}, "a": {"z": 1.0}}, ["NDCG@10", "map"])
    assert list(frame.columns) == ["NDCG@10", "map"]  # as given
    assert list(frame.index) == ["b", "a"]
    assert frame.dtypes.tolist() == [np.float64, np.float64]
    assert frame["NDCG@10"].tolist() == [1.0, 0.0]


def test_no_common_queries_gives_an_empty_frame() -> None:
    frame = evaluate({"a": {"x": 1}}, {"b": {"x": 1.0}}, ["mrr"])
    assert isinstance(frame, pd.DataFrame)
    assert frame.empty
    assert list(frame.columns) == ["mrr"]


# ------------------------------------------------------------------------------------------------ names


def test_parse_metric_forms() -> None:
    assert parse_metric("recall@10").k == 10
    assert parse_metric("mrr").k is None
    assert parse_metric("mrr@10").family == "mrr"
    assert parse_metric("ndcg").k is None
    assert parse_metric("map").family == "map"


@pytest.mark.parametrize("name", ["recall@x", "ndcg@0", "precision@-1", "hit@1.5", "recall@", "recall"])
def test_bad_cutoffs_are_input_errors(name: str) -> None:
    with pytest.raises(InputError) as info:
        parse_metric(name)
    assert name in str(info.value)


def test_map_takes_no_cutoff() -> None:
    with pytest.raises(InputError, match="takes no cutoff"):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["map@10"])


def test_unknown_metric_lists_every_valid_name_from_the_registry() -> None:
    with pytest.raises(InputError) as info:
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["recall@5", "f1@3"])
    message = str(info.value)
    assert "f1@3" in message
    for family in METRICS:
        assert family in message
    for form in ["recall@k", "precision@k", "hit@k", "mrr@k", "ndcg@k", "map"]:
        assert form in message


def test_repeated_or_empty_metric_lists_are_rejected() -> None:
    with pytest.raises(InputError, match="twice"):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["mrr", "mrr"])
    with pytest.raises(InputError):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, [])


@pytest.mark.parametrize(
    ("qrels", "run", "fragment"),
    [
        ({"q": {"a": 1.5}}, {"q": {"a": 1.0}}, "integer grade"),
        ({"q": {"a": "1"}}, {"q": {"a": 1.0}}, "not a number"),
        ({"q": {"a": 1}}, {"q": {"a": float("nan")}}, "NaN"),
        ({"q": {"a": 1}}, {"q": {"a": "high"}}, "not a number"),
        ([("q", "a")], {"q": {"a": 1.0}}, "mapping"),
        ({"q": {"a": 1}}, {"q": ["a"]}, "mapping"),
    ],
)
def test_malformed_inputs_are_input_errors(qrels, run, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        evaluate(qrels, run, ["mrr"])


# ----------------------------------------------------------------------------------------------- helpers


def test_ann_fidelity() -> None:
    exact = ["a", "b", "c", "d"]
    assert ann_fidelity(["a", "b", "c", "d"], exact, 4) == 1.0
    assert ann_fidelity(["a", "x", "c", "y"], exact, 4) == 0.5
    assert ann_fidelity(["b", "a"], exact, 2) == 1.0  # order inside the top k does not matter
    assert ann_fidelity(["a", "b"], ["a", "b"], 10) == 1.0  # fewer than k exact results
    assert ann_fidelity(["c"], exact, 2) == 0.0
    assert ann_fidelity(["a"], [], 5) is None
    with pytest.raises(InputError):
        ann_fidelity(["a"], exact, 0)


def test_doc_run_keeps_each_docs_best_chunk() -> None:
    ranked = [("doc1", 0.9), ("doc2", 0.8), ("doc1", 0.95), ("doc3", 0.1), ("doc2", 0.2)]
    assert doc_run_from_chunks(ranked) == {"doc1": 0.95, "doc2": 0.8, "doc3": 0.1}
    assert list(doc_run_from_chunks(ranked)) == ["doc1", "doc2", "doc3"]
    assert doc_run_from_chunks([]) == {}
