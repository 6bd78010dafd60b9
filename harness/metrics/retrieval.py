"""Retrieval metrics over graded qrels and scored runs, defined exactly as trec_eval defines them.

``qrels`` are ``{query_id: {doc_id: grade}}`` (relevant when ``grade >= 1``) and a ``run`` is
``{query_id: {doc_id: score}}``, as in trec_eval. How documents are ranked (trec_eval's float32 scores and doc id
tie-break) and which queries are scored is described in :mod:`harness.metrics.ranking`.

Metrics (``k`` is the cutoff, ``rel_i`` is 1 when the document at rank ``i`` is relevant, ``R`` is the number of
relevant documents for the query, retrieved or not):

=============  ================  ==========================================================
our name       trec_eval         formula
=============  ================  ==========================================================
recall@k       recall_k          sum_{i<=k} rel_i / R
precision@k    P_k               sum_{i<=k} rel_i / k   (k, even when fewer were retrieved)
hit@k          success_k         1 if sum_{i<=k} rel_i > 0 else 0
mrr / mrr@k    recip_rank        1 / (rank of first relevant doc), 0 if none (within k)
ndcg / ndcg@k  ndcg / ndcg_cut   DCG / ideal DCG, gain = grade, discount = log2(rank + 1)
map            map               sum_i rel_i * precision@i / R
=============  ================  ==========================================================

Each metric is computed from the flat arrays of a :class:`~harness.metrics.ranking.Rankings` (the ranks and grades of
every query's relevant retrieved documents) without per-query Python loops, so scoring 10,000 queries takes about a
third of ``pytrec_eval``'s time (see ``bench/metrics.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.errors import InputError
from harness.metrics.ranking import Qrels, Rankings, Run, rank_runs

__all__ = [
    "METRICS",
    "MetricFamily",
    "MetricSpec",
    "ann_fidelity",
    "average_precision",
    "doc_run_from_chunks",
    "evaluate",
    "hit",
    "metric_names_help",
    "ndcg",
    "parse_metric",
    "precision",
    "recall",
    "reciprocal_rank",
]


# --------------------------------------------------------------------------------------------------- metrics
# Each takes the rankings and a cutoff and returns one float per query, in ``rankings.query_ids`` order.


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # trec_eval reports 0 where the denominator (relevant docs, ideal DCG) is 0.
    ratio: np.ndarray = np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
    return ratio


def recall(r: Rankings, k: int) -> np.ndarray:
    """Recall at ``k`` (trec_eval ``recall_k``).

    ``recall@k = |relevant among the top k| / R`` where ``R`` is the number of relevant documents judged for the
    query, retrieved or not. 0 when ``R == 0``.
    """
    return _safe_divide(r.hits_within(k), r.n_relevant.astype(np.float64))


def precision(r: Rankings, k: int) -> np.ndarray:
    """Precision at ``k`` (trec_eval ``P_k``).

    ``precision@k = |relevant among the top k| / k``. The denominator is ``k`` even when fewer than ``k``
    documents were retrieved.
    """
    return r.hits_within(k) / float(k)


def hit(r: Rankings, k: int) -> np.ndarray:
    """Success at ``k`` (trec_eval ``success_k``): 1 if any of the top ``k`` is relevant, else 0."""
    return (r.hits_within(k) > 0).astype(np.float64)


def reciprocal_rank(r: Rankings, k: int | None = None) -> np.ndarray:
    """Reciprocal rank (trec_eval ``recip_rank``), optionally cut at ``k``.

    ``rr = 1 / rank of the first relevant document``; 0 when no relevant document was retrieved (or none within
    the top ``k`` when a cutoff is given). The mean over queries is the MRR. trec_eval has no cut form; ``mrr@k``
    equals ``recip_rank`` of the run truncated to its top ``k``.
    """
    best = r.best_rank  # 0: no relevant document retrieved
    found = (best > 0) & (best <= k) if k is not None else best > 0
    reciprocal: np.ndarray = np.divide(1.0, best, out=np.zeros(r.n_queries, dtype=np.float64), where=found)
    return reciprocal


def ndcg(r: Rankings, k: int | None = None) -> np.ndarray:
    """Normalised discounted cumulative gain (trec_eval ``ndcg``, and ``ndcg_cut_k`` with a cutoff).

    ``DCG@k = sum_{i<=k} gain_i / log2(i + 1)`` with ``gain_i`` the grade of the document at rank ``i`` (linear
    gain; 0 for unjudged and negative grades). The ideal DCG applies the same sum to all judged documents with a
    positive grade, sorted by grade descending, cut at ``k`` too. ``nDCG@k = DCG@k / ideal DCG@k``, 0 when the
    ideal DCG is 0. Without a cutoff, both sums run over every retrieved/judged document.
    """
    query, rank, gain = r.query, r.rank, r.gain
    if k is not None:
        within = rank <= k
        query, rank, gain = query[within], rank[within], gain[within]
    dcg = np.bincount(query, weights=gain / np.log2(rank + 1.0), minlength=r.n_queries)
    # Term by term in rank order, as trec_eval sums them, so a perfect ranking scores exactly 1.
    ideal_query, ideal_rank, ideal_gain = r.ideal_ranking(k)
    idcg = np.bincount(ideal_query, weights=ideal_gain / np.log2(ideal_rank + 1.0), minlength=r.n_queries)
    return _safe_divide(dcg, idcg)


def average_precision(r: Rankings, k: int | None = None) -> np.ndarray:
    """Average precision (trec_eval ``map`` per query; the mean over queries is MAP).

    ``AP = sum_i rel_i * precision@i / R`` over every retrieved rank ``i``, where ``R`` is the number of relevant
    documents judged for the query: relevant documents never retrieved contribute 0. 0 when ``R == 0``.
    ``k`` is unused (``map`` takes no cutoff); it is accepted so every metric shares one signature.
    """
    del k
    # precision@i at the rank i of each relevant retrieved document: relevant documents at or above it, over i.
    total = r.per_query_sum(r.relevant_above() / r.rank)
    return _safe_divide(total, r.n_relevant.astype(np.float64))


# -------------------------------------------------------------------------------------------------- registry

CutoffRule = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class MetricFamily:
    """One metric family: its function, whether its name takes ``@k``, and the trec_eval measure it mirrors."""

    # k is an int for "required" families and may be None otherwise; ``cutoff`` is what guarantees it.
    fn: Callable[[Rankings, Any], np.ndarray]
    cutoff: CutoffRule
    trec_measure: str

    def forms(self, name: str) -> list[str]:
        """The name forms this family accepts, e.g. ``["ndcg", "ndcg@k"]``."""
        return {"required": [f"{name}@k"], "optional": [name, f"{name}@k"], "none": [name]}[self.cutoff]


# The only list of retrieval metrics. Parsing, validation and error messages all read it.
METRICS: dict[str, MetricFamily] = {
    "recall": MetricFamily(recall, "required", "recall_k"),
    "precision": MetricFamily(precision, "required", "P_k"),
    "hit": MetricFamily(hit, "required", "success_k"),
    "mrr": MetricFamily(reciprocal_rank, "optional", "recip_rank"),
    "ndcg": MetricFamily(ndcg, "optional", "ndcg / ndcg_cut_k"),
    "map": MetricFamily(average_precision, "none", "map"),
}


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name such as ``ndcg@10``: the name as given, its family and its cutoff."""

    name: str
    family: str
    k: int | None

    def compute(self, rankings: Rankings) -> np.ndarray:
        return METRICS[self.family].fn(rankings, self.k)


def metric_names_help() -> str:
    """The valid metric names, built from :data:`METRICS`."""
    forms = [form for name, family in METRICS.items() for form in family.forms(name)]
    return ", ".join(forms) + " (k a positive integer)"


_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:@(?P<k>.*))?$")


def parse_metric(name: str) -> MetricSpec:
    """Parse a metric name like ``recall@10``, ``mrr`` or ``map``.

    Raises:
        InputError: unknown family, a missing/forbidden cutoff, or a cutoff that is not a positive integer.
    """
    if not isinstance(name, str):
        raise InputError(f"metric name must be a string, got {name!r}", hint=f"use one of: {metric_names_help()}")
    match = _NAME.match(name.strip().lower())
    family = METRICS.get(match["family"]) if match else None
    if match is None or family is None:
        raise InputError(f"unknown retrieval metric {name!r}", hint=f"use one of: {metric_names_help()}")
    raw_k = match["k"]
    forms = " or ".join(family.forms(match["family"]))
    if raw_k is None:
        if family.cutoff == "required":
            raise InputError(f"metric {name!r} needs a cutoff", hint=f"write it as {forms}, e.g. {match['family']}@10")
        return MetricSpec(name, match["family"], None)
    if family.cutoff == "none":
        raise InputError(f"metric {name!r} takes no cutoff", hint=f"write it as {forms}")
    if not raw_k.isascii() or not raw_k.isdigit() or int(raw_k) < 1:
        raise InputError(
            f"metric {name!r} has cutoff {raw_k!r}, which is not a positive integer",
            hint=f"write it as {forms} with k >= 1, e.g. {match['family']}@10",
        )
    return MetricSpec(name, match["family"], int(raw_k))


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str]) -> pd.DataFrame:
    """Score a run against qrels, one row per scored query and one column per metric.

    Args:
        qrels: ``{query_id: {doc_id: grade}}``, integer grades, relevant when ``grade >= 1``.
        run: ``{query_id: {doc_id: score}}``, higher is better.
        metrics: names such as ``["recall@10", "ndcg@10", "mrr", "map"]``; see :data:`METRICS`.

    Returns:
        A float frame indexed by ``query_id`` (the scored queries, in run order; see :mod:`harness.metrics.ranking` for
        which queries are scored) with one column per metric name, spelled as given.

    Raises:
        InputError: an unknown or malformed metric name, a repeated name, or malformed qrels/run.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise InputError("no retrieval metrics requested", hint=f"ask for some of: {metric_names_help()}")
    specs = [parse_metric(name) for name in metrics]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InputError(f"metric {spec.name!r} is listed twice", hint="list each metric once")
        seen.add(spec.name)
    rankings = rank_runs(qrels, run)
    # One 2-D block: a frame built from it skips pandas' consolidation of one column array per metric.
    values = np.empty((rankings.n_queries, len(specs)), dtype=np.float64)
    for column, spec in enumerate(specs):
        values[:, column] = spec.compute(rankings)
    index = pd.Index(rankings.query_ids, name="query_id", dtype=object)
    return pd.DataFrame(values, index=index, columns=[spec.name for spec in specs], copy=False)


# --------------------------------------------------------------------------------------------------- helpers


def ann_fidelity(approx: Sequence[str], exact: Sequence[str], k: int) -> float | None:
    """Recall of an approximate nearest-neighbour top-k against exact search.

    ``fidelity = |approx[:k] ∩ exact[:k]| / min(k, len(exact))``. 1.0 means the index returned exactly what a
    brute-force search would have. Returns ``None`` when ``exact`` is empty (nothing to recall; unmeasured, not 0).

    Raises:
        InputError: ``k`` is not a positive integer.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"ann_fidelity cutoff k={k!r} is not a positive integer", hint="pass k >= 1")
    truth = set(exact[:k])
    if not truth:
        return None
    return len(set(approx[:k]) & truth) / min(k, len(exact))


def doc_run_from_chunks(ranked: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Collapse a ranked list of ``(doc_id, score)`` chunk hits into a document-level run.

    Each document keeps the score of its best chunk ("MaxP"): a document is as relevant as its most relevant
    passage, and summing chunk scores would favour documents that were merely split into more chunks. Documents
    appear in the order of their first (best-ranked) chunk.
    """
    best: dict[str, float] = {}
    for doc_id, score in ranked:
        current = best.get(doc_id)
        if current is None or score > current:
            best[doc_id] = score
    return best
