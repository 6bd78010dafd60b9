"""Speed of ``harness.metrics.retrieval.evaluate`` against ``pytrec_eval`` on the same input.

Target: scoring 10,000 queries x 100 retrieved docs with 7 metrics is no slower than pytrec_eval (ratio <= 1.0).

pytrec_eval has no cut form of reciprocal rank, so it is timed with the measure set that yields the same
information ({recall_10, P_5, success_5, recip_rank, ndcg_cut_10, map}); ``mrr@10`` has no trec_eval twin and is
computed only by us, so our side does strictly more work. Both timings include everything from the Python dicts
to per-query values (for pytrec_eval: building the RelevanceEvaluator, then evaluate()). Best of 3.

Run: ``python bench/metrics.py [--queries N] [--docs N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from harness.metrics.retrieval import evaluate

OURS = ["recall@10", "precision@5", "hit@5", "mrr", "mrr@10", "ndcg@10", "map"]
TREC = {"recall_10", "P_5", "success_5", "recip_rank", "ndcg_cut_10", "map"}
SAME = {"recall@10": "recall_10", "precision@5": "P_5", "hit@5": "success_5", "mrr": "recip_rank",
        "ndcg@10": "ndcg_cut_10", "map": "map"}


def make_input(n_queries: int, n_docs: int, seed: int = 0) -> tuple[dict, dict]:
    """Random graded qrels (about 30 judged docs per query, grades 0-3) and runs of ``n_docs`` scored docs.

    Scores are rounded to 3 decimals so that ties occur, as they do with real retrievers.
    """
    rng = np.random.default_rng(seed)
    corpus = np.array([f"doc{i:06d}" for i in range(200_000)])
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        pool = corpus[rng.choice(corpus.size, n_docs + 50, replace=False)]
        judged = rng.choice(pool, 30, replace=False)
        qrels[f"q{q}"] = dict(zip(judged.tolist(), rng.integers(0, 4, judged.size).tolist(), strict=True))
        retrieved = pool[:n_docs]
        run[f"q{q}"] = dict(zip(retrieved.tolist(), np.round(rng.random(n_docs), 3).tolist(), strict=True))
    return qrels, run


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import pytrec_eval
    except ImportError:
        print("pytrec_eval is not installed (pip install pytrec-eval-terrier); nothing to compare against")
        return 2

    qrels, run = make_input(args.queries, args.docs)
    print(f"input: {args.queries:,} queries x {args.docs} docs, {len(OURS)} metrics: {', '.join(OURS)}")

    ours_s, frame = best_of(args.repeats, lambda: evaluate(qrels, run, OURS))
    trec_s, trec = best_of(args.repeats, lambda: pytrec_eval.RelevanceEvaluator(qrels, TREC).evaluate(run))

    # A benchmark of wrong numbers is worthless: check agreement on the shared measures.
    worst = max(abs(frame.at[q, ours] - trec[q][theirs]) for q in trec for ours, theirs in SAME.items())
    print(f"ours        evaluate()                     {ours_s:8.3f} s  (best of {args.repeats})")
    print(f"pytrec_eval RelevanceEvaluator + evaluate  {trec_s:8.3f} s  (best of {args.repeats})")
    ratio = ours_s / trec_s
    print(f"ratio ours/pytrec_eval: {ratio:.2f}   max |difference| on shared measures: {worst:.2e}")
    ok = ratio <= 1.0 and worst <= 1e-6
    print(f"target ratio <= 1.0 and agreement <= 1e-6: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
