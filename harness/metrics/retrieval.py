"""Retrieval metrics over graded qrels and scored runs, defined exactly as trec_eval defines them.

Inputs follow trec_eval (and ``pytrec_eval``):

* ``qrels``: ``{query_id: {doc_id: grade}}`` with integer grades. A document is *relevant* when
  ``grade >= 1`` (trec_eval's default ``relevance_level`` of 1). Grade 0 is judged non-relevant; a negative
  grade means "in the pool but unjudged" and, as in trec_eval, counts as neither relevant nor as a gain.
* ``run``: ``{query_id: {doc_id: score}}``. Documents are ranked by score, highest first; ties are broken by
  doc id in *descending* lexical (code point) order, which is what trec_eval's ``comp_sim_docno`` does
  (``strcmp(p2->docno, p1->docno)``). A run document absent from the qrels is unjudged and non-relevant.

Scores are compared at single precision: trec_eval stores them as C ``float``, so two scores that differ only
beyond float32 precision tie (and fall to the doc id tie-break). Checked against ``pytrec_eval``.

Which queries are scored (also checked against ``pytrec_eval``): every query present in both ``run`` and
``qrels`` whose qrels hold at least one judgement (any grade). A query whose qrels hold only zeros is therefore
*scored*, with every metric 0 (recall and MAP divide by zero relevant documents and trec_eval reports 0); so is a
query with an empty run dict. A query with an empty qrels dict is left out, as are queries present in only one
input.

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

The implementation ranks every query once into flat numpy arrays (a :class:`Rankings`) and computes each metric
from them without per-query Python loops, so scoring 10,000 queries is as fast as ``pytrec_eval``
(see ``bench/metrics.py``).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Literal

import numpy as np
import pandas as pd

from harness.errors import InputError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

# Precision at which scores are compared when ranking (trec_eval's ``float sim``).
SCORE_DTYPE = np.float32

__all__ = [
    "METRICS",
    "MetricFamily",
    "MetricSpec",
    "Rankings",
    "ann_fidelity",
    "average_precision",
    "doc_run_from_chunks",
    "evaluate",
    "hit",
    "metric_names_help",
    "ndcg",
    "parse_metric",
    "precision",
    "rank_runs",
    "recall",
    "reciprocal_rank",
]


@dataclass(frozen=True, eq=False)
class Rankings:
    """Relevance by rank for many queries, stored flat: query-major, then rank.

    Attributes:
        query_ids: the scored queries, in run order; ``query`` indexes into it.
        lengths: number of ranked documents of each query (may be 0).
        query: query index of each ranked document (non-decreasing).
        rank: 1-based rank of each document within its query.
        gain: ``max(grade, 0)`` of each ranked document (0 when unjudged).
        relevant: whether each ranked document has ``grade >= 1``.
        n_relevant: per query, the number of judged documents with ``grade >= 1``, retrieved or not.
        ideal_query, ideal_rank, ideal_gain: the ideal ranking of each query, i.e. its positive grades
            sorted from highest, as flat arrays like the ones above.
    """

    query_ids: list[str]
    lengths: np.ndarray
    query: np.ndarray
    rank: np.ndarray
    gain: np.ndarray
    relevant: np.ndarray
    n_relevant: np.ndarray
    ideal_query: np.ndarray
    ideal_rank: np.ndarray
    ideal_gain: np.ndarray

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def per_query_sum(self, weights: np.ndarray) -> np.ndarray:
        """Sum ``weights`` (one per ranked document) within each query."""
        return np.bincount(self.query, weights=weights, minlength=self.n_queries)


# --------------------------------------------------------------------------------------------------- metrics
# Each takes the rankings and a cutoff and returns one float per query, in ``rankings.query_ids`` order.


def _hits_at(r: Rankings, k: int) -> np.ndarray:
    return r.per_query_sum((r.relevant & (r.rank <= k)).astype(np.float64))


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # trec_eval reports 0 where the denominator (relevant docs, ideal DCG) is 0.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def recall(r: Rankings, k: int) -> np.ndarray:
    """Recall at ``k`` (trec_eval ``recall_k``).

    ``recall@k = |relevant among the top k| / R`` where ``R`` is the number of relevant documents judged for the
    query, retrieved or not. 0 when ``R == 0``.
    """
    return _safe_divide(_hits_at(r, k), r.n_relevant.astype(np.float64))


def precision(r: Rankings, k: int) -> np.ndarray:
    """Precision at ``k`` (trec_eval ``P_k``).

    ``precision@k = |relevant among the top k| / k``. The denominator is ``k`` even when fewer than ``k``
    documents were retrieved.
    """
    return _hits_at(r, k) / float(k)


def hit(r: Rankings, k: int) -> np.ndarray:
    """Success at ``k`` (trec_eval ``success_k``): 1 if any of the top ``k`` is relevant, else 0."""
    return (_hits_at(r, k) > 0).astype(np.float64)


def reciprocal_rank(r: Rankings, k: int | None = None) -> np.ndarray:
    """Reciprocal rank (trec_eval ``recip_rank``), optionally cut at ``k``.

    ``rr = 1 / rank of the first relevant document``; 0 when no relevant document was retrieved (or none within
    the top ``k`` when a cutoff is given). The mean over queries is the MRR. trec_eval has no cut form; ``mrr@k``
    equals ``recip_rank`` of the run truncated to its top ``k``.
    """
    mask = r.relevant if k is None else r.relevant & (r.rank <= k)
    queries = r.query[mask]
    ranks = r.rank[mask]
    out = np.zeros(r.n_queries, dtype=np.float64)
    if queries.size:
        # Flat arrays are sorted by (query, rank): the first entry of each query is its best rank.
        first = np.flatnonzero(np.concatenate(([True], queries[1:] != queries[:-1])))
        out[queries[first]] = 1.0 / ranks[first]
    return out


def ndcg(r: Rankings, k: int | None = None) -> np.ndarray:
    """Normalised discounted cumulative gain (trec_eval ``ndcg``, and ``ndcg_cut_k`` with a cutoff).

    ``DCG@k = sum_{i<=k} gain_i / log2(i + 1)`` with ``gain_i`` the grade of the document at rank ``i`` (linear
    gain; 0 for unjudged and negative grades). The ideal DCG applies the same sum to all judged documents with a
    positive grade, sorted by grade descending, cut at ``k`` too. ``nDCG@k = DCG@k / ideal DCG@k``, 0 when the
    ideal DCG is 0. Without a cutoff, both sums run over every retrieved/judged document.
    """
    weights = r.gain / np.log2(r.rank + 1.0)
    ideal = r.ideal_gain / np.log2(r.ideal_rank + 1.0)
    if k is not None:
        weights = np.where(r.rank <= k, weights, 0.0)
        ideal = np.where(r.ideal_rank <= k, ideal, 0.0)
    dcg = r.per_query_sum(weights)
    idcg = np.bincount(r.ideal_query, weights=ideal, minlength=r.n_queries)
    return _safe_divide(dcg, idcg)


def average_precision(r: Rankings, k: int | None = None) -> np.ndarray:
    """Average precision (trec_eval ``map`` per query; the mean over queries is MAP).

    ``AP = sum_i rel_i * precision@i / R`` over every retrieved rank ``i``, where ``R`` is the number of relevant
    documents judged for the query: relevant documents never retrieved contribute 0. 0 when ``R == 0``.
    ``k`` is unused (``map`` takes no cutoff); it is accepted so every metric shares one signature.
    """
    del k
    cum = np.cumsum(r.relevant, dtype=np.int64)
    # Relevant docs at or above each rank within its query: subtract the running total before the query starts.
    starts = np.cumsum(r.lengths) - r.lengths
    before = np.concatenate(([0], cum))[starts]
    precision_at = (cum - np.repeat(before, r.lengths)) / r.rank
    total = r.per_query_sum(np.where(r.relevant, precision_at, 0.0))
    return _safe_divide(total, r.n_relevant.astype(np.float64))


# -------------------------------------------------------------------------------------------------- registry

CutoffRule = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class MetricFamily:
    """One metric family: its function, whether its name takes ``@k``, and the trec_eval measure it mirrors."""

    fn: Callable[[Rankings, int | None], np.ndarray]
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


# ------------------------------------------------------------------------------------------------- ranking


def _check_mapping(value: object, what: str) -> None:
    if not isinstance(value, Mapping):
        raise InputError(
            f"{what} must be a mapping of query id -> {{doc id: value}}, got {type(value).__name__}",
            hint=f"pass {what} as a dict of dicts",
        )


def _flat_floats(groups: Iterable[Iterable[object]], count: int, what: str, qids: Sequence[str],
                 sources: Sequence[Mapping[str, object]]) -> np.ndarray:
    """Concatenate numbers into one float array; name the first offending query on failure.

    ``array('d')`` rejects strings (``np.fromiter`` would quietly parse ``"1"``) and is still a C loop.
    """
    try:
        values = array("d", chain.from_iterable(groups))
    except (TypeError, ValueError, OverflowError) as exc:
        for qid, source in zip(qids, sources, strict=True):
            for doc, value in source.items():
                if isinstance(value, str | bytes) or not hasattr(value, "__float__"):
                    raise InputError(
                        f"{what}[{qid!r}][{doc!r}] is {value!r}, not a number", hint=f"make every {what} value a number"
                    ) from exc
        raise InputError(f"{what} holds a value that is not a number: {exc}", hint="check the input") from exc
    if len(values) != count:  # pragma: no cover - a dict changed size while we read it
        raise InputError(f"{what} changed while being read", hint="do not modify the inputs during evaluate()")
    return np.frombuffer(values, dtype=np.float64)


def _first_bad(qids: Sequence[str], sources: Sequence[Mapping[str, object]], flat_bad: np.ndarray) -> str:
    index = int(np.flatnonzero(flat_bad)[0])
    for qid, source in zip(qids, sources, strict=True):
        if index < len(source):
            doc = list(source)[index]
            return f"[{qid!r}][{doc!r}] = {source[doc]!r}"
        index -= len(source)
    return ""  # pragma: no cover - index always falls in some query


def _segment_ranks(lengths: np.ndarray) -> np.ndarray:
    """1-based position within each segment of a flat array made of segments of the given lengths."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(1, total + 1, dtype=np.int64) - np.repeat(starts, lengths)


def _descending_bits(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of the float32 ``scores`` (no NaNs).

    One integer sort key per document (query in the high bits, this in the low bits) sorts several times faster
    than a two-key lexsort.
    """
    bits = (scores + np.float32(0.0)).view(np.uint32)  # adding +0.0 turns -0.0 into 0.0: they compare equal
    sign = np.uint32(0x80000000)
    ascending = np.where(bits & sign, ~bits, bits | sign)
    return ~ascending


def _break_ties(order: np.ndarray, sorted_scores: np.ndarray, query: np.ndarray,
                docs: Callable[[], list[str]]) -> np.ndarray:
    """Reorder runs of equal scores within a query by doc id, descending (trec_eval's tie-break).

    Python string order is code point order, which is the byte order of UTF-8: the same as trec_eval's ``strcmp``.
    """
    same = (sorted_scores[1:] == sorted_scores[:-1]) & (query[1:] == query[:-1])
    if not same.any():
        return order
    # A tie group is a maximal run of sorted positions linked by ``same``.
    edges = np.diff(np.concatenate(([0], same.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    sizes = np.flatnonzero(edges == -1) - starts + 1
    all_docs = docs()
    fixed = order.copy()
    # Pairs are by far the commonest tie: one vectorised-ish comparison each, swapping when out of order.
    first = starts[sizes == 2]
    if first.size:
        a = order[first]
        b = order[first + 1]
        swap = np.fromiter(
            (all_docs[i] < all_docs[j] for i, j in zip(a.tolist(), b.tolist(), strict=True)), dtype=bool, count=a.size
        )
        fixed[first[swap]] = b[swap]
        fixed[first[swap] + 1] = a[swap]
    for start, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist(), strict=True):
        block = order[start : start + size].tolist()
        fixed[start : start + size] = sorted(block, key=all_docs.__getitem__, reverse=True)
    return fixed


def rank_runs(qrels: Qrels, run: Run) -> Rankings:
    """Rank every scored query of ``run`` once and look up the relevance of each ranked document.

    Raises:
        InputError: inputs that are not dicts of dicts, non-numeric or NaN scores, non-integer grades.
    """
    _check_mapping(qrels, "qrels")
    _check_mapping(run, "run")
    qids: list[str] = []
    for qid, docs in run.items():
        _check_mapping(docs, f"run[{qid!r}]")
        judged = qrels.get(qid)
        if judged is None:
            continue
        _check_mapping(judged, f"qrels[{qid!r}]")
        # pytrec_eval skips a query whose qrels dict is empty, but scores one whose run dict is empty.
        if judged:
            qids.append(qid)
    runs = [run[q] for q in qids]
    judgements = [qrels[q] for q in qids]

    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=len(qids))
    judged_lengths = np.fromiter(map(len, judgements), dtype=np.int64, count=len(qids))
    n_ranked = int(lengths.sum())

    judged_grades = _flat_floats((j.values() for j in judgements), int(judged_lengths.sum()), "qrels", qids, judgements)
    bad = ~np.isfinite(judged_grades) | (judged_grades != np.round(judged_grades))
    if bad.any():
        raise InputError(
            f"qrels{_first_bad(qids, judgements, bad)} is not an integer grade",
            hint="grades are integers: 0 for non-relevant, 1 and up for relevant (as in trec_eval qrels)",
        )
    scores = _flat_floats((r.values() for r in runs), n_ranked, "run", qids, runs)
    bad = np.isnan(scores)
    if bad.any():
        raise InputError(f"run{_first_bad(qids, runs, bad)} is NaN", hint="give every retrieved doc a real score")
    grades = np.fromiter(
        chain.from_iterable(map(j.get, r, repeat(0)) for j, r in zip(judgements, runs, strict=True)),
        dtype=np.float64,
        count=n_ranked,
    )

    query = np.repeat(np.arange(len(qids), dtype=np.int64), lengths)
    # trec_eval keeps scores as C floats; rounding to float32 reproduces its ties. Huge scores overflow to inf,
    # as they do there.
    with np.errstate(over="ignore"):
        ranked_scores = scores.astype(SCORE_DTYPE)
    # Sort by query, then score descending. Sorting keeps every query's block in place, so ``query`` stays valid.
    key = (query.astype(np.uint64) << np.uint64(32)) | _descending_bits(ranked_scores).astype(np.uint64)
    order = np.argsort(key, kind="stable")
    order = _break_ties(order, ranked_scores[order], query, lambda: list(chain.from_iterable(runs)))
    grades = grades[order]

    judged_query = np.repeat(np.arange(len(qids), dtype=np.int64), judged_lengths)
    positive = judged_grades >= 1
    ideal_query = judged_query[positive]
    ideal_gain = judged_grades[positive]
    ideal_order = np.lexsort((-ideal_gain, ideal_query))
    ideal_gain = ideal_gain[ideal_order]
    n_relevant = np.bincount(ideal_query, minlength=len(qids)).astype(np.int64)

    return Rankings(
        query_ids=qids,
        lengths=lengths,
        query=query,
        rank=_segment_ranks(lengths),
        gain=np.maximum(grades, 0.0),
        relevant=grades >= 1,
        n_relevant=n_relevant,
        ideal_query=ideal_query[ideal_order],
        ideal_rank=_segment_ranks(n_relevant),
        ideal_gain=ideal_gain,
    )


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str]) -> pd.DataFrame:
    """Score a run against qrels, one row per scored query and one column per metric.

    Args:
        qrels: ``{query_id: {doc_id: grade}}``, integer grades, relevant when ``grade >= 1``.
        run: ``{query_id: {doc_id: score}}``, higher is better.
        metrics: names such as ``["recall@10", "ndcg@10", "mrr", "map"]``; see :data:`METRICS`.

    Returns:
        A float frame indexed by ``query_id`` (the scored queries, in run order; see the module docstring for which
        queries are scored) with one column per metric name, spelled as given.

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
    columns = {spec.name: spec.compute(rankings) for spec in specs}
    index = pd.Index(rankings.query_ids, name="query_id", dtype=object)
    return pd.DataFrame(columns, index=index, columns=[spec.name for spec in specs])


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
