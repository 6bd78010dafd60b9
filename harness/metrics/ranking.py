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

:func:`rank_runs` ranks every query once into a :class:`Rankings` without per-query Python loops (one sort over
all queries); the metrics in :mod:`harness.metrics.retrieval` are computed from those arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import gt, itemgetter

import numpy as np

from harness.errors import InputError
from harness.metrics.run_input import (
    SCORE_DTYPE,
    Qrels,
    Run,
    check_mapping,
    first_bad,
    read_flat,
    scored_queries,
)

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
        ideal_query, ideal_gain, ideal_size, ideal_above: the ideal ranking of each query (its positive grades
            sorted from highest) in tiers of equal grade, sorted by query, then grade descending: tier ``i`` holds
            ``ideal_size[i]`` documents of gain ``ideal_gain[i]`` at the ideal ranks ``ideal_above[i] + 1`` to
            ``ideal_above[i] + ideal_size[i]``. Grades take few values, so there are far fewer tiers than documents.
    """

    query_ids: list[str]
    lengths: np.ndarray
    query: np.ndarray
    rank: np.ndarray
    gain: np.ndarray
    n_relevant: np.ndarray
    ideal_query: np.ndarray
    ideal_gain: np.ndarray
    ideal_size: np.ndarray
    ideal_above: np.ndarray
    _hits_within: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def hits_within(self, k: int) -> np.ndarray:
        """Per query, how many relevant documents are ranked within the top ``k`` (kept: several metrics ask)."""
        hits = self._hits_within.get(k)
        if hits is None:
            hits = self._hits_within[k] = np.bincount(self.query[self.rank <= k], minlength=self.n_queries)
        return hits

    @cached_property
    def best_rank(self) -> np.ndarray:
        """Per query, the rank of its best-ranked relevant document; 0 when none was retrieved."""
        best = np.zeros(self.n_queries, dtype=np.int64)
        if self.query.size:
            # Sorted by (query, rank): the first entry of each query is its best-ranked relevant document.
            first = np.flatnonzero(np.concatenate(([True], self.query[1:] != self.query[:-1])))
            best[self.query[first]] = self.rank[first]
        return best

    def ideal_ranking(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ideal ranking of every query, cut at ``k`` (whole when ``k`` is None): the query, rank and gain of each
        of its documents, flat, sorted by query, then rank."""
        size = self.ideal_size if k is None else np.clip(k - self.ideal_above, 0, self.ideal_size)
        rank = np.repeat(self.ideal_above, size) + _segment_ranks(size)
        return np.repeat(self.ideal_query, size), rank, np.repeat(self.ideal_gain, size)

    def per_query_sum(self, weights: np.ndarray) -> np.ndarray:
        """Sum ``weights`` (one per relevant retrieved document) within each query."""
        return np.bincount(self.query, weights=weights, minlength=self.n_queries)

    def relevant_above(self) -> np.ndarray:
        """For each relevant retrieved document, how many relevant documents are ranked at or above it."""
        return _segment_ranks(np.bincount(self.query, minlength=self.n_queries))



def _segment_ranks(lengths: np.ndarray) -> np.ndarray:
    """1-based position within each segment of a flat array made of segments of the given lengths."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    ranks: np.ndarray = np.arange(1, total + 1, dtype=np.int64) - np.repeat(starts, lengths)
    return ranks


def _to_descending_bits(scores: np.ndarray) -> np.ndarray:
    """Turn float32 ``scores`` (no NaNs), in place, into uint32 keys whose ascending order is their descending order.

    One integer sort key per document (query in the high bits, this in the low bits) sorts several times faster
    than a two-key lexsort. In place because fresh memory costs a page fault per 4 KiB.
    """
    scores += SCORE_DTYPE(0.0)  # adding +0.0 turns -0.0 into 0.0: they compare equal
    as_int = scores.view(np.int32)
    # Negative floats order descending by their bits already; non-negative ones by their bits flipped but for the
    # sign bit (kept 0, so every non-negative score sorts before every negative one).
    flip = as_int >> 31  # -1 (all bits set) for negative scores, 0 for the others
    np.invert(flip, out=flip)
    flip &= np.int32(0x7FFFFFFF)
    as_int ^= flip
    return scores.view(np.uint32)


# Widest sort key that numpy sorts natively. A module constant so that a test can force the argsort fallback.
_PACKED_KEY_BITS = 64


@dataclass(frozen=True, eq=False)
class _SortedRun:
    """Every run document's uint64 sort key, sorted: by query, then by descending float32 score.

    A key holds the query index above 32 bits of :func:`_to_descending_bits`, and below them, in ``shift`` bits, the
    document's position within its query's run. Sorting these keys with ``np.sort`` also says where each sorted
    document came from, at about a third of the cost of the ``argsort`` it replaces. When the three fields do not
    fit in 64 bits, ``shift`` is 0 and ``order`` (from an ``argsort``) holds each sorted key's flat run position.
    """

    keys: np.ndarray
    shift: int
    order: np.ndarray | None
    starts: np.ndarray

    @classmethod
    def of(cls, bits: np.ndarray, lengths: np.ndarray, starts: np.ndarray) -> _SortedRun:
        """Sort the run documents given their :func:`_to_descending_bits` in flat run order and each query's length."""
        n_queries = lengths.size
        shift = max(int(lengths.max()) - 1, 0).bit_length() if n_queries else 0
        if max(n_queries - 1, 0).bit_length() + 32 + shift <= _PACKED_KEY_BITS:
            query_bits = np.arange(n_queries, dtype=np.uint64) << np.uint64(32)
            if n_queries and lengths.min() == lengths.max():
                # Every query ranked as many documents (the usual top-k run): built in place in a 2-D view, with no
                # temporary arrays (a new array costs a page fault per 4 KiB).
                grid = np.empty((n_queries, int(lengths[0])), dtype=np.uint64)
                grid[...] = query_bits[:, None]
                grid |= bits.reshape(grid.shape)
                grid <<= np.uint64(shift)
                grid |= np.arange(grid.shape[1], dtype=np.uint64)
                keys = grid.reshape(-1)
            else:
                keys = np.repeat(query_bits, lengths)
                keys |= bits
                keys <<= np.uint64(shift)
                keys |= (_segment_ranks(lengths) - 1).view(np.uint64)
            keys.sort()
            return cls(keys, shift, None, starts)
        keys = (np.repeat(np.arange(n_queries, dtype=np.uint64), lengths) << np.uint64(32)) | bits.astype(np.uint64)
        order = np.argsort(keys)
        return cls(keys[order], 0, order, starts)

    def group(self, query: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """The (query, float32 score) group of documents with these fields, as the high bits of their keys."""
        group: np.ndarray = (query.astype(np.uint64) << np.uint64(32)) | bits.astype(np.uint64)
        return group

    def first_of(self, group: np.ndarray) -> np.ndarray:
        """Sorted index of the first document of each group (of the next group when it is empty)."""
        return np.searchsorted(self.keys, group << np.uint64(self.shift))

    def group_at(self, index: np.ndarray) -> np.ndarray:
        """The group of the documents at these sorted indices."""
        group: np.ndarray = self.keys[index] >> np.uint64(self.shift)
        return group

    def flat_positions(self, index: np.ndarray) -> np.ndarray:
        """Flat run position of the documents at these sorted indices."""
        if self.order is not None:
            flat: np.ndarray = self.order[index]
            return flat
        keys = self.keys[index]
        query = (keys >> np.uint64(32 + self.shift)).astype(np.int64)
        flat = self.starts[query] + (keys & np.uint64((1 << self.shift) - 1)).astype(np.int64)
        return flat


def _docs_tied_above(owner_ids: Sequence[str], left: np.ndarray, right: np.ndarray, ordered: _SortedRun,
                     run_docs: list[str]) -> np.ndarray:
    """How many documents tied with each relevant document (same query, same float32 score) outrank it.

    trec_eval breaks ties by doc id in descending code point order (``comp_sim_docno``: ``strcmp(p2, p1)``), and
    Python compares strings by code point. ``owner_ids`` are the relevant documents' ids, ``left:right`` their tie
    groups in ``ordered``, the sorted run, and ``run_docs`` the flat run's doc ids.
    """
    sizes = right - left
    # One (document, rival) pair per member of each tie group; a document never beats itself.
    owner = np.repeat(np.arange(sizes.size), sizes)
    rival = ordered.flat_positions(np.repeat(left, sizes) + _segment_ranks(sizes) - 1)
    # A tie group has two members or more, so itemgetter always gets several indices and returns a tuple.
    rival_ids = itemgetter(*rival.tolist())(run_docs)
    beats = np.fromiter(map(gt, rival_ids, map(owner_ids.__getitem__, owner.tolist())), dtype=bool, count=owner.size)
    return np.bincount(owner[beats], minlength=sizes.size)


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


def _ideal_tiers(query: np.ndarray, grade: np.ndarray, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's positive integer grades, sorted from highest, in tiers of equal grade: the query, the grade and
    the size of each tier, sorted by query, then grade descending (``query`` is non-decreasing).

    Grades are small integers in practice, so a table of how many times each query holds each grade gives the tiers
    without sorting; grades too large for such a table are sorted instead.
    """
    if not grade.size:
        return query, grade, np.zeros(0, dtype=np.int64)
    top = int(grade.max())
    if top * n_queries <= max(4 * grade.size, 1 << 16):
        # Column top - g counts grade g, so reading a query's row left to right goes from the highest grade down.
        # Built in place (a new array costs a page fault per 4 KiB); grades are integers, so the cast is exact.
        cell = query * top
        cell += top
        np.subtract(cell, grade, out=cell, casting="unsafe")
        counts = np.bincount(cell, minlength=n_queries * top)
        cell = np.flatnonzero(counts)
        return cell // top, (top - cell % top).astype(np.float64), counts[cell]
    order = _by_query_then_grade_descending(query, grade)
    query, grade = query[order], grade[order]
    first = np.flatnonzero(np.concatenate(([True], (query[1:] != query[:-1]) | (grade[1:] != grade[:-1]))))
    return query[first], grade[first], np.diff(np.append(first, grade.size))


def rank_runs(qrels: Qrels, run: Run) -> Rankings:
    """Find the rank of every relevant retrieved document of every scored query, once, as trec_eval ranks them.

    Every run document is sorted once (one ``np.sort`` of integer keys: query in the high bits, then descending
    float32 score, then the document's position in its run; see :class:`_SortedRun`); a relevant document's rank is
    then where its query and score fall in that order, plus the tied documents that beat it on doc id. Only the
    judged documents are looked up in the run; the (many more) retrieved documents are only read, never looked up
    one by one.

    Raises:
        InputError: inputs that are not dicts of dicts, non-numeric or NaN scores, non-integer grades.
    """
    check_mapping(qrels, "qrels")
    check_mapping(run, "run")
    qids, runs, judgements = scored_queries(qrels, run)
    n_queries = len(qids)

    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=n_queries)
    judged_lengths = np.fromiter(map(len, judgements), dtype=np.int64, count=n_queries)
    flat = read_flat(qids, runs, judgements, lengths, judged_lengths)
    judged_grades = flat.grades
    bad = ~np.isfinite(judged_grades) | (judged_grades != np.round(judged_grades))
    if bad.any():
        raise InputError(
            f"qrels{first_bad(qids, judgements, bad)} is not an integer grade",
            hint="grades are integers: 0 for non-relevant, 1 and up for relevant (as in trec_eval qrels)",
        )
    scores = flat.scores
    bad = np.isnan(scores)
    if bad.any():
        raise InputError(f"run{first_bad(qids, runs, bad)} is NaN", hint="give every retrieved doc a real score")
    judged_query = np.repeat(np.arange(n_queries, dtype=np.int64), judged_lengths)
    positive = judged_grades >= 1
    positive_query = judged_query[positive]
    n_positive = np.bincount(positive_query, minlength=n_queries)
    found = np.flatnonzero(positive & ~np.isnan(flat.judged_scores))

    hit_query = judged_query[found]
    starts = np.cumsum(lengths) - lengths
    ordered = _SortedRun.of(_to_descending_bits(scores), lengths, starts)
    hit_group = ordered.group(hit_query, _to_descending_bits(flat.judged_scores[found]))
    left = ordered.first_of(hit_group)
    # A relevant document ties with another when the next sorted document is in its group.
    following = left + 1
    has_next = np.flatnonzero(following < ordered.keys.size)
    tied = has_next[ordered.group_at(following[has_next]) == hit_group[has_next]]
    hit_rank = left - starts[hit_query] + 1
    if tied.size:
        right = ordered.first_of(hit_group[tied] + np.uint64(1))
        owner_ids = list(map(flat.judged_docs.__getitem__, found[tied].tolist()))
        hit_rank[tied] += _docs_tied_above(owner_ids, left[tied], right, ordered, flat.run_docs)
    # Ranks are distinct within a query, so a hit's place in the whole sorted run orders hits by (query, rank).
    hit_order = np.argsort(starts[hit_query] + hit_rank)

    ideal_query, ideal_gain, ideal_size = _ideal_tiers(positive_query, judged_grades[positive], n_queries)
    ideal_end = np.cumsum(ideal_size)
    n_relevant = n_positive.astype(np.int64)

    return Rankings(
        query_ids=qids,
        lengths=lengths,
        query=hit_query[hit_order],
        rank=hit_rank[hit_order],
        gain=judged_grades[found[hit_order]],
        n_relevant=n_relevant,
        ideal_query=ideal_query,
        ideal_gain=ideal_gain,
        ideal_size=ideal_size,
        ideal_above=ideal_end - ideal_size - (np.cumsum(n_relevant) - n_relevant)[ideal_query],
    )
