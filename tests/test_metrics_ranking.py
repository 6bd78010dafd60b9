"""The fast paths of harness.metrics.ranking against trec_eval (through pytrec_eval): each path is forced, or fed
the input that takes it, and must score exactly like the oracle.

The paths: sort keys packed with the run position (and the argsort used when they do not fit in 64 bits); keys built
in a 2-D view when every run has the same length (and from flat arrays otherwise); the ideal ranking's tiers counted
in a table (and sorted when grades are too large for it); the input read in chunks of queries.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import numpy as np
import pytest
from _trec import assert_matches_trec, needs_trec, our_names, random_case

from harness.errors import InputError
from harness.metrics import ranking, run_input
from harness.metrics.retrieval import evaluate

pytestmark = needs_trec


@pytest.fixture(params=["packed", "argsort"])
def sort_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with packed sort keys and once with the argsort they replace."""
    if request.param == "argsort":
        monkeypatch.setattr(ranking, "_PACKED_KEY_BITS", 0)
    return str(request.param)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_runs_of_varied_lengths(seed: int, sort_path: str) -> None:
    assert_matches_trec(*random_case(seed))


@pytest.mark.parametrize(("seed", "n_retrieved"), [(3, 25), (4, 40), (5, 1)])
def test_runs_of_one_length_are_keyed_in_2d(seed: int, n_retrieved: int, sort_path: str) -> None:
    # Every run dict the same length: heavy ties, empty and zero-only qrels, negative grades, unicode ids.
    qrels, run = random_case(seed, n_retrieved=n_retrieved)
    assert {len(docs) for docs in run.values()} == {n_retrieved}
    assert_matches_trec(qrels, run)


def test_every_run_empty(sort_path: str) -> None:
    qrels, run = random_case(6, n_retrieved=0)
    assert_matches_trec(qrels, run)
    assert (evaluate(qrels, run, our_names()).to_numpy() == 0).all()


def test_many_ties_in_long_runs(sort_path: str) -> None:
    # 300 queries x 200 docs, three distinct scores: tie groups of about 70 documents.
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(400)] + ["é", "ü9", "Z", "z", "日本"]
    qrels, run = {}, {}
    for q in range(300):
        pool = rng.choice(docs, size=200, replace=False).tolist()
        run[f"q{q}"] = dict(zip(pool, rng.choice([0.5, 1.0, 2.0], size=200).tolist(), strict=True))
        judged = rng.choice(docs, size=40, replace=False).tolist()
        qrels[f"q{q}"] = dict(zip(judged, rng.choice([-2, 0, 1, 4], size=40).tolist(), strict=True))
    assert_matches_trec(qrels, run)


@pytest.mark.parametrize(("top", "sorted_"), [(3, False), (40, False), (5000, True)])
def test_ideal_ranking_tiers_counted_or_sorted(top: int, sorted_: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small grades are counted in a (query, grade) table; 5000 makes that table too large, so they are sorted.
    calls = []
    sort = ranking._by_query_then_grade_descending
    monkeypatch.setattr(ranking, "_by_query_then_grade_descending", lambda *args: calls.append(1) or sort(*args))
    qrels, run = random_case(8, grades=(-1, 0, 1, 2, top - 1, top))
    assert_matches_trec(qrels, run)
    assert bool(calls) == sorted_


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunk_boundaries_do_not_matter(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    qrels, run = random_case(9)
    expected = evaluate(qrels, run, our_names())
    monkeypatch.setattr(run_input, "_READ_CHUNK", chunk)
    assert_matches_trec(qrels, run)
    assert evaluate(qrels, run, our_names()).equals(expected)


def test_scores_of_other_number_types_and_overflow() -> None:
    # ints, bools, numpy scalars and Decimals are numbers; scores beyond float32 become +-inf and tie, as in trec_eval.
    qrels = {"a": {"x": 1, "y": 2}, "b": {"x": 1}, "c": {"x": 1}}
    run = {"a": {"x": np.float32(0.5), "y": 1, "z": True},
           "b": {"x": Decimal("2.5"), "y": np.int64(3), "w": 2.5},
           "c": {"x": 1e39, "y": 2e39, "z": -1e39}}
    assert_matches_trec(qrels, run)
    assert evaluate(qrels, run, ["mrr"]).at["c", "mrr"] == 0.5  # x and y both +inf; "y" > "x" ranks first


def test_mappings_that_are_not_dicts() -> None:
    qrels, run = random_case(10)
    expected = evaluate(qrels, run, our_names())
    proxied_qrels = MappingProxyType({q: MappingProxyType(docs) for q, docs in qrels.items()})
    proxied_run = MappingProxyType({q: MappingProxyType(docs) for q, docs in run.items()})
    assert evaluate(proxied_qrels, proxied_run, our_names()).equals(expected)


@pytest.mark.parametrize("bad", ["0.5", b"1", None, [1.0], 1j])
@pytest.mark.parametrize("where", ["run", "qrels"])
def test_a_bad_value_far_into_the_input_is_named(bad: object, where: str) -> None:
    qrels = {f"q{q}": {"a": 1, "b": 0} for q in range(100)}
    run = {f"q{q}": {"a": 0.5, "b": 0.25} for q in range(100)}
    (run if where == "run" else qrels)["q70"]["b"] = bad  # type: ignore[index]
    with pytest.raises(InputError, match="not a number") as info:
        evaluate(qrels, run, ["mrr"])
    assert f"{where}['q70']['b'] is {bad!r}" in str(info.value)


def test_a_perfect_ranking_scores_exactly_one() -> None:
    # The ideal DCG is summed term by term in rank order, like the DCG, so the two are equal to the last bit.
    grades = [3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    qrels = {"q": {f"d{i}": grade for i, grade in enumerate(grades)}}
    run = {"q": {f"d{i}": float(-i) for i in range(len(grades))}}
    row = evaluate(qrels, run, ["ndcg", "ndcg@1", "ndcg@4", "ndcg@10", "ndcg@100"]).loc["q"]
    assert row.tolist() == [1.0] * 5
