"""Speed of ``harness.metrics.retrieval.evaluate`` against ``pytrec_eval`` on the same input.

Target: scoring 10,000 queries x 100 retrieved docs with 7 metrics takes at most half of pytrec_eval's time
(ratio <= 0.5), with every shared measure within 1e-6 of it.

pytrec_eval has no cut form of reciprocal rank, so it is timed with the measure set that yields the same
information ({recall_10, P_5, success_5, recip_rank, ndcg_cut_10, map}); ``mrr@10`` has no trec_eval twin and is
computed only by us, so our side does strictly more work. Both timings include everything from the Python dicts
to per-query values (for pytrec_eval: building the RelevanceEvaluator, then evaluate()). The two sides alternate,
repeat by repeat, so a burst of load from other processes on a shared machine hits both alike; the ratio is of the
best times, and the median of the per-repeat ratios is printed beside it.

Run: ``python bench/metrics.py [--queries N] [--docs N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


TARGET_RATIO = 0.5
TARGET_AGREEMENT = 1e-6


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        import pytrec_eval
    except ImportError:
        print("pytrec_eval is not installed (pip install pytrec-eval-terrier); nothing to compare against")
        return 2

    qrels, run = make_input(args.queries, args.docs)
    print(f"input: {args.queries:,} queries x {args.docs} docs, {len(OURS)} metrics: {', '.join(OURS)}")

    ours: list[float] = []
    theirs: list[float] = []
    frame, trec = None, None
    for _ in range(args.repeats):  # interleaved: load from other processes hits both sides alike
        seconds, frame = timed(lambda: evaluate(qrels, run, OURS))
        ours.append(seconds)
        seconds, trec = timed(lambda: pytrec_eval.RelevanceEvaluator(qrels, TREC).evaluate(run))
        theirs.append(seconds)
    assert frame is not None and trec is not None

    # A benchmark of wrong numbers is worthless: check agreement on the shared measures.
    worst = max(abs(frame.at[q, name] - trec[q][measure]) for q in trec for name, measure in SAME.items())
    ours_s, trec_s = min(ours), min(theirs)
    print(f"{'':12s}{'best':>9s}{'median':>9s}   (of {args.repeats}, alternating)")
    print(f"{'ours':12s}{ours_s:9.3f}{statistics.median(ours):9.3f} s   evaluate()")
    print(f"{'pytrec_eval':12s}{trec_s:9.3f}{statistics.median(theirs):9.3f} s   RelevanceEvaluator + evaluate")
    ratio = ours_s / trec_s
    paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"ratio ours/pytrec_eval: {ratio:.2f} (best/best; median of per-repeat ratios {paired:.2f})   "
          f"max |difference| on shared measures: {worst:.2e}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    ok = ratio <= TARGET_RATIO and worst <= TARGET_AGREEMENT
    print(f"target ratio <= {TARGET_RATIO} and agreement <= {TARGET_AGREEMENT:g}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
