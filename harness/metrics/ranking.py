"""Rank scored runs against graded qrels into flat numpy arrays, exactly as trec_eval ranks them.

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

:func:`rank_runs` ranks every query once into a :class:`Rankings` without per-query Python loops; the metrics in
:mod:`harness.metrics.retrieval` are computed from those arrays.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import cast

import numpy as np

from harness.errors import InputError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

# Precision at which scores are compared when ranking (trec_eval's ``float sim``).
SCORE_DTYPE = np.float32

__all__ = ["SCORE_DTYPE", "Qrels", "Rankings", "Run", "rank_runs"]


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
        values = array("d", cast("Iterable[float]", chain.from_iterable(groups)))
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
