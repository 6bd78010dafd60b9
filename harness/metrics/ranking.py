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

:func:`rank_runs` ranks every query once into a :class:`Rankings` without per-query Python loops (one ``argsort``
over all queries); the metrics in :mod:`harness.metrics.retrieval` are computed from those arrays.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import gt, itemgetter
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
    """Where each query's relevant documents were ranked, for many queries at once, stored flat.

    Only relevant documents (``grade >= 1``) carry gain or count as hits, so only their ranks are kept: every
    metric is a sum over them (hits, discounted gains, precision at each relevant rank) divided by a per-query
    denominator. The arrays ``query``, ``rank`` and ``gain`` hold one entry per relevant *retrieved* document,
    sorted by query, then rank (so the first entry of a query is its best-ranked relevant document, and the
    ``j``-th entry of a query has ``j`` relevant documents at or above it: the cumulative count MAP needs).

    Attributes:
        query_ids: the scored queries, in run order; ``query`` indexes into it.
        lengths: number of ranked documents of each query (may be 0).
        query: query index of each relevant retrieved document (non-decreasing).
        rank: its 1-based rank within its query's run, as trec_eval ranks it.
        gain: its grade (always >= 1).
        n_relevant: per query, the number of judged documents with ``grade >= 1``, retrieved or not.
        ideal_query, ideal_rank, ideal_gain: the ideal ranking of each query, i.e. its positive grades
            sorted from highest, as flat arrays like the ones above.
    """

    query_ids: list[str]
    lengths: np.ndarray
    query: np.ndarray
    rank: np.ndarray
    gain: np.ndarray
    n_relevant: np.ndarray
    ideal_query: np.ndarray
    ideal_rank: np.ndarray
    ideal_gain: np.ndarray

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def per_query_sum(self, weights: np.ndarray) -> np.ndarray:
        """Sum ``weights`` (one per relevant retrieved document) within each query."""
        return np.bincount(self.query, weights=weights, minlength=self.n_queries)

    def relevant_above(self) -> np.ndarray:
        """For each relevant retrieved document, how many relevant documents are ranked at or above it."""
        return _segment_ranks(np.bincount(self.query, minlength=self.n_queries))


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


@dataclass(frozen=True, eq=False)
class _Flat:
    """The inputs read into flat arrays, query by query: run scores and doc ids, grades and judged doc ids, and the
    run score of every judged document (NaN when it was not retrieved)."""

    scores: np.ndarray
    run_docs: list[str]
    grades: np.ndarray
    judged_docs: list[str]
    judged_scores: np.ndarray


def _read_flat(qids: Sequence[str], runs: Sequence[Mapping[str, float]], judgements: Sequence[Mapping[str, int]]
               ) -> _Flat:
    """Read every query's run and qrels in one pass.

    One query at a time, so the run dict read for its scores is still in the CPU cache when its judged documents are
    looked up in it: this pass is most of ``evaluate``'s time, and reading each input in one sweep of its own would
    take about half as long again. ``array('d')`` rejects strings (``np.fromiter`` would quietly parse ``"1"``) and is
    still a C loop; a value it rejects is named by :func:`_flat_floats`.
    """
    scores, grades, judged_scores = array("d"), array("d"), array("d")
    run_docs: list[str] = []
    judged_docs: list[str] = []
    add_scores, add_grades, add_judged_scores = scores.extend, grades.extend, judged_scores.extend
    add_run_docs, add_judged_docs = run_docs.extend, judged_docs.extend
    try:
        for ranked, judged in zip(runs, judgements, strict=True):
            add_scores(cast("Iterable[float]", ranked.values()))
            add_grades(cast("Iterable[float]", judged.values()))
            add_run_docs(ranked)
            add_judged_docs(judged)
            add_judged_scores(map(ranked.get, judged, repeat(math.nan)))
    except (TypeError, ValueError, OverflowError):
        _flat_floats((j.values() for j in judgements), sum(map(len, judgements)), "qrels", qids, judgements)
        _flat_floats((r.values() for r in runs), sum(map(len, runs)), "run", qids, runs)
        raise  # pragma: no cover - one of the two reads above names the bad value
    return _Flat(np.frombuffer(scores, dtype=np.float64), run_docs, np.frombuffer(grades, dtype=np.float64),
                 judged_docs, np.frombuffer(judged_scores, dtype=np.float64))


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
    ranks: np.ndarray = np.arange(1, total + 1, dtype=np.int64) - np.repeat(starts, lengths)
    return ranks


def _descending_bits(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of the float32 ``scores`` (no NaNs).

    One integer sort key per document (query in the high bits, this in the low bits) sorts several times faster
    than a two-key lexsort.
    """
    bits = (scores + np.float32(0.0)).view(np.uint32)  # adding +0.0 turns -0.0 into 0.0: they compare equal
    # Negative floats order descending by their bits already; non-negative ones by their bits flipped (sign kept 0,
    # so every non-negative score sorts before every negative one).
    return np.where(bits >= np.uint32(0x80000000), bits, bits ^ np.uint32(0x7FFFFFFF))


def _docs_tied_above(hits: np.ndarray, left: np.ndarray, right: np.ndarray, order: np.ndarray,
                     judged_docs: list[str], run_docs: list[str]) -> np.ndarray:
    """How many documents tied with each relevant document (same query, same float32 score) outrank it.

    trec_eval breaks ties by doc id in descending code point order (``comp_sim_docno``: ``strcmp(p2, p1)``), and
    Python compares strings by code point. ``hits`` are the relevant documents' positions in the flat qrels,
    ``left:right`` their tie groups in the sorted run (``order``: flat run position of each sorted entry).
    """
    tied = np.flatnonzero(right - left > 1)
    sizes = (right - left)[tied]
    # One (document, rival) pair per member of each tie group; a document never beats itself.
    owner = np.repeat(tied, sizes)
    rival = order[np.repeat(left[tied], sizes) + _segment_ranks(sizes) - 1]
    # A tie group has two members or more, so itemgetter always gets several indices and returns a tuple.
    owner_ids = itemgetter(*hits[owner].tolist())(judged_docs)
    rival_ids = itemgetter(*rival.tolist())(run_docs)
    beats = np.fromiter(map(gt, rival_ids, owner_ids), dtype=bool, count=owner.size)
    return np.bincount(owner[beats], minlength=left.size)


def _by_query_then_grade_descending(query: np.ndarray, grade: np.ndarray) -> np.ndarray:
    """The order that sorts positive integer ``grade`` from highest within each ``query`` (ascending).

    One integer key (query, then the grade's distance from the largest grade) when it fits in 62 bits: several
    times faster than ``np.lexsort`` on two keys.
    """
    if not grade.size:
        return np.zeros(0, dtype=np.int64)
    top = float(grade.max())
    span = top + 1.0
    if span * (float(query.max()) + 1.0) >= 2.0**62:
        return np.lexsort((-grade, query))
    key = query.astype(np.int64) * np.int64(span) + (np.int64(top) - grade.astype(np.int64))
    return np.argsort(key)


def _scored_queries(qrels: Qrels, run: Run) -> list[str]:
    """The queries trec_eval scores, in run order: in both inputs, with a non-empty qrels dict.

    pytrec_eval skips a query whose qrels dict is empty, but scores one whose run dict is empty.
    """
    if {type(docs) for docs in run.values()} <= {dict} and {type(docs) for docs in qrels.values()} <= {dict}:
        return [qid for qid in run if qrels.get(qid)]  # plain dicts of dicts: nothing to check one by one
    qids: list[str] = []
    for qid, docs in run.items():
        _check_mapping(docs, f"run[{qid!r}]")
        judged = qrels.get(qid)
        if judged is None:
            continue
        _check_mapping(judged, f"qrels[{qid!r}]")
        if judged:
            qids.append(qid)
    return qids


def rank_runs(qrels: Qrels, run: Run) -> Rankings:
    """Find the rank of every relevant retrieved document of every scored query, once, as trec_eval ranks them.

    Every run document is sorted once (one ``argsort`` over an integer key: query in the high bits, descending
    float32 score in the low bits); a relevant document's rank is then where its key falls in that order, plus the
    tied documents that beat it on doc id. Only the judged documents are looked up in the run; the (many more)
    retrieved documents are only read, never looked up one by one.

    Raises:
        InputError: inputs that are not dicts of dicts, non-numeric or NaN scores, non-integer grades.
    """
    _check_mapping(qrels, "qrels")
    _check_mapping(run, "run")
    qids = _scored_queries(qrels, run)
    runs = [run[q] for q in qids]
    judgements = [qrels[q] for q in qids]
    n_queries = len(qids)

    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=n_queries)
    judged_lengths = np.fromiter(map(len, judgements), dtype=np.int64, count=n_queries)
    flat = _read_flat(qids, runs, judgements)
    judged_grades = flat.grades
    bad = ~np.isfinite(judged_grades) | (judged_grades != np.round(judged_grades))
    if bad.any():
        raise InputError(
            f"qrels{_first_bad(qids, judgements, bad)} is not an integer grade",
            hint="grades are integers: 0 for non-relevant, 1 and up for relevant (as in trec_eval qrels)",
        )
    scores = flat.scores
    bad = np.isnan(scores)
    if bad.any():
        raise InputError(f"run{_first_bad(qids, runs, bad)} is NaN", hint="give every retrieved doc a real score")
    judged_query = np.repeat(np.arange(n_queries, dtype=np.int64), judged_lengths)
    positive = judged_grades >= 1
    n_positive = np.bincount(judged_query[positive], minlength=n_queries)
    found = np.flatnonzero(positive & ~np.isnan(flat.judged_scores))

    query = np.repeat(np.arange(n_queries, dtype=np.uint64), lengths)
    # trec_eval keeps scores as C floats; rounding to float32 reproduces its ties. Huge scores overflow to inf,
    # as they do there.
    with np.errstate(over="ignore"):
        key = (query << np.uint64(32)) | _descending_bits(scores.astype(SCORE_DTYPE)).astype(np.uint64)
        sorted_key = np.sort(key)
        hit_query = judged_query[found]
        hit_key = (hit_query.astype(np.uint64) << np.uint64(32)) | _descending_bits(
            flat.judged_scores[found].astype(SCORE_DTYPE)).astype(np.uint64)
    left = np.searchsorted(sorted_key, hit_key, side="left")
    # A relevant document ties with another when the next sorted key is its own.
    following = left + 1
    has_next = np.flatnonzero(following < sorted_key.size)
    tied = has_next[sorted_key[following[has_next]] == hit_key[has_next]]
    hit_rank = left - (np.cumsum(lengths) - lengths)[hit_query] + 1
    if tied.size:
        # Which documents tie is only known from the full argsort; most real runs (cosine scores) never need it.
        order = np.argsort(key)
        right = np.searchsorted(sorted_key, hit_key[tied], side="right")
        hit_rank[tied] += _docs_tied_above(found[tied], left[tied], right, order,
                                           flat.judged_docs, flat.run_docs)
    # Ranks within a query are below 2**32 (the sort key above holds the query in the high bits too).
    hit_order = np.argsort((hit_query.astype(np.uint64) << np.uint64(32)) | hit_rank.astype(np.uint64))

    ideal_query = judged_query[positive]
    ideal_gain = judged_grades[positive]
    ideal_order = _by_query_then_grade_descending(ideal_query, ideal_gain)
    n_relevant = n_positive.astype(np.int64)

    return Rankings(
        query_ids=qids,
        lengths=lengths,
        query=hit_query[hit_order],
        rank=hit_rank[hit_order],
        gain=judged_grades[found][hit_order],
        n_relevant=n_relevant,
        ideal_query=ideal_query[ideal_order],
        ideal_rank=_segment_ranks(n_relevant),
        ideal_gain=ideal_gain[ideal_order],
    )
