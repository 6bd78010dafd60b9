"""trec_eval (through pytrec_eval) as the oracle of the retrieval metrics, and random inputs that stress them."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.retrieval import evaluate, parse_metric

try:
    import pytrec_eval
except ImportError:  # pragma: no cover - a dev dependency; the hand-worked tests still run without it
    pytrec_eval = None

needs_trec = pytest.mark.skipif(pytrec_eval is None, reason="pytrec-eval-terrier is not installed")

CUTOFFS = (1, 3, 5, 10, 20)


def trec_measures() -> set[str]:
    measures = {"recip_rank", "map", "ndcg"}
    for k in CUTOFFS:
        measures |= {f"recall_{k}", f"P_{k}", f"success_{k}", f"ndcg_cut_{k}"}
    return measures


def our_names() -> list[str]:
    names = ["mrr", "map", "ndcg"]
    for k in CUTOFFS:
        names += [f"recall@{k}", f"precision@{k}", f"hit@{k}", f"ndcg@{k}", f"mrr@{k}"]
    return names


def oracle(trec: dict[str, float], name: str) -> float:
    """The trec_eval value our metric ``name`` must equal."""
    spec = parse_metric(name)
    k = spec.k
    if spec.family == "mrr" and k is not None:
        # No trec_eval twin: recip_rank of the run cut at k is recip_rank when the first hit is within k, else 0.
        rr = trec["recip_rank"]
        return rr if rr >= 1.0 / k - 1e-12 else 0.0
    family = {"recall": "recall_{k}", "precision": "P_{k}", "hit": "success_{k}", "mrr": "recip_rank",
              "map": "map", "ndcg": "ndcg_cut_{k}" if k is not None else "ndcg"}[spec.family]
    return trec[family.format(k=k)]


def assert_matches_trec(qrels: dict, run: dict) -> None:
    """Every metric of ``evaluate`` equals trec_eval's on every query trec_eval scores, and no other query is scored.

    pytrec_eval reads scores as Python floats, so ``run`` is handed to it with every score converted by ``float``.
    """
    trec = pytrec_eval.RelevanceEvaluator(qrels, trec_measures()).evaluate(
        {qid: {doc: float(score) for doc, score in docs.items()} for qid, docs in run.items()})
    names = our_names()
    frame = evaluate(qrels, run, names)
    assert set(frame.index) == set(trec)
    for qid, values in trec.items():
        for name in names:
            assert frame.at[qid, name] == pytest.approx(oracle(values, name), abs=1e-9), (qid, name)


def random_case(seed: int, n_queries: int = 120, corpus: int = 80, n_retrieved: int | None = None,
                grades: tuple[int, ...] = (-1, 0, 0, 1, 2, 3)):
    """Graded qrels (0-3, some -1 = unjudged in pool) and runs with heavy score ties and varied lengths.

    Includes queries with no relevant doc, with all-zero qrels, with empty qrels or runs, with fewer retrieved
    than the largest cutoff, and queries present in only one of the two inputs. ``n_retrieved`` gives every run the
    same length instead (capped by the pool of 40 docs); ``grades`` are the grades drawn from.
    """
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(corpus)] + ["D7", "d7a", "é1", "a"]  # mixed case, prefixes, non-ASCII ids
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        pool = rng.choice(docs, size=40, replace=False)
        n_judged = int(rng.integers(0, 25))
        drawn = rng.choice(grades, size=n_judged)
        if q % 11 == 0:
            drawn = np.zeros(n_judged, dtype=int)  # no relevant doc at all
        if q % 13 != 5:
            qrels[qid] = dict(zip(pool[:n_judged].tolist(), drawn.tolist(), strict=True))
        n_ret = int(rng.integers(0, 30)) if n_retrieved is None else n_retrieved
        retrieved = rng.choice(pool, size=n_ret, replace=False)
        # Few distinct values, so ties are frequent; some scores negative.
        scores = np.round(rng.normal(size=n_ret), 1)
        if q % 17 != 3:
            run[qid] = dict(zip(retrieved.tolist(), scores.tolist(), strict=True))
    return qrels, run
