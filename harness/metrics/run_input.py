"""Read trec_eval-style inputs (``{query: {doc: value}}`` dicts) into flat arrays, and pick the queries trec_eval
scores; :mod:`harness.metrics.ranking` ranks what this reads.

Every bad value is named by query and document (:class:`~harness.errors.InputError`), never turned into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import attrgetter, methodcaller, pos
from typing import Any, cast

import numpy as np

from harness.errors import InputError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

# Precision at which scores are compared when ranking (trec_eval's ``float sim``).
SCORE_DTYPE = np.float32
def check_mapping(value: object, what: str) -> None:
    if not isinstance(value, Mapping):
        raise InputError(
            f"{what} must be a mapping of query id -> {{doc id: value}}, got {type(value).__name__}",
            hint=f"pass {what} as a dict of dicts",
        )


def _as_floats(values: Iterable[Any], count: int, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
    """``count`` numbers as a float array, in one C loop.

    ``operator.pos`` passes numbers through (``+x``) and raises ``TypeError`` on strings, bytes and ``None``, which
    ``np.fromiter`` alone would quietly parse or turn into NaN. Numbers too large for ``dtype`` become infinite.
    """
    with np.errstate(over="ignore"):
        return np.fromiter(map(pos, values), dtype=dtype, count=count)


def _name_unreadable(what: str, qids: Sequence[str], sources: Sequence[Mapping[str, object]]) -> None:
    """Raise an :class:`InputError` naming the first value of ``sources`` that :func:`_as_floats` rejects."""
    for qid, source in zip(qids, sources, strict=True):
        for doc, value in source.items():
            try:
                _as_floats((value,), 1)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InputError(
                    f"{what}[{qid!r}][{doc!r}] is {value!r}, not a number", hint=f"make every {what} value a number"
                ) from exc


@dataclass(frozen=True, eq=False)
class FlatInput:
    """The inputs read into flat arrays, query by query: run scores and doc ids, grades and judged doc ids, and the
    run score of every judged document (NaN when it was not retrieved). Scores are kept as :data:`SCORE_DTYPE`, the
    precision they are ranked at."""

    scores: np.ndarray
    run_docs: list[str]
    grades: np.ndarray
    judged_docs: list[str]
    judged_scores: np.ndarray


# Queries read together by _read_flat: few enough that their doc id strings stay in cache from the moment they are
# copied to the moment they are looked up. On bench/metrics.py's input, 32 to 256 are within 2% of each other on a
# quiet machine; on a busy one, reading in chunks of 1,024 took half as long again as in chunks of 64.
_READ_CHUNK = 32


def read_flat(qids: Sequence[str], runs: Sequence[Mapping[str, float]], judgements: Sequence[Mapping[str, int]],
               lengths: np.ndarray, judged_lengths: np.ndarray) -> FlatInput:
    """Read every query's run and qrels, a chunk of queries at a time, with C loops only.

    Most of ``evaluate``'s time is spent here, waiting for memory: looking a judged document up in the run reads its
    doc id string and the run's, which lie all over the heap. So the doc ids of a chunk of queries are first copied
    into flat lists: those reads do not depend on each other, so the CPU fetches many strings at once, and the
    lookups that follow find them in cache. The lists are kept for the doc id tie-break (reading the ids again later,
    only for the queries with a tie, costs more, as by then they are out of cache). A chunk, rather than the whole
    input or one query at a time, is what keeps the strings cached while paying Python's per-call cost only once per
    chunk.

    Raises:
        InputError: naming the first score or grade that is not a number.
    """
    scores = np.empty(int(lengths.sum()), dtype=SCORE_DTYPE)
    grades = np.empty(int(judged_lengths.sum()), dtype=np.float64)
    judged_scores = np.empty(grades.size, dtype=SCORE_DTYPE)
    run_docs: list[str] = []
    judged_docs: list[str] = []
    ends = [0, *np.cumsum(lengths).tolist()]
    judged_ends = [0, *np.cumsum(judged_lengths).tolist()]
    values, getter, missing = methodcaller("values"), attrgetter("get"), repeat(repeat(math.nan))
    try:
        for first in range(0, len(runs), _READ_CHUNK):
            last = min(first + _READ_CHUNK, len(runs))
            chunk, judged = runs[first:last], judgements[first:last]
            start, stop, judged_start, judged_stop = ends[first], ends[last], judged_ends[first], judged_ends[last]
            run_docs.extend(chain.from_iterable(chunk))
            judged_docs.extend(chain.from_iterable(judged))
            scores[start:stop] = _as_floats(chain.from_iterable(map(values, chunk)), stop - start, SCORE_DTYPE)
            grades[judged_start:judged_stop] = _as_floats(chain.from_iterable(map(values, judged)),
                                                          judged_stop - judged_start)
            # run.get(doc, nan) for every judged doc: the run's values were read just above, so these are numbers.
            with np.errstate(over="ignore"):
                judged_scores[judged_start:judged_stop] = np.fromiter(
                    chain.from_iterable(map(map, map(getter, chunk), judged, missing)), dtype=SCORE_DTYPE,
                    count=judged_stop - judged_start)
    except (TypeError, ValueError, OverflowError) as exc:
        _name_unreadable("qrels", qids, judgements)
        _name_unreadable("run", qids, runs)
        raise InputError(f"the run or qrels changed while being read: {exc}",
                         hint="do not modify the inputs during evaluate()") from exc
    return FlatInput(scores, run_docs, grades, judged_docs, judged_scores)


def first_bad(qids: Sequence[str], sources: Sequence[Mapping[str, object]], flat_bad: np.ndarray) -> str:
    index = int(np.flatnonzero(flat_bad)[0])
    for qid, source in zip(qids, sources, strict=True):
        if index < len(source):
            doc = list(source)[index]
            return f"[{qid!r}][{doc!r}] = {source[doc]!r}"
        index -= len(source)
    return ""  # pragma: no cover - index always falls in some query


def scored_queries(qrels: Qrels, run: Run) -> tuple[list[str], list[Mapping[str, float]], list[Mapping[str, int]]]:
    """The queries trec_eval scores, in run order, with their runs and qrels: in both inputs, with a non-empty qrels
    dict.

    pytrec_eval skips a query whose qrels dict is empty, but scores one whose run dict is empty.
    """
    if set(map(type, run.values())) <= {dict} and set(map(type, qrels.values())) <= {dict}:
        # Plain dicts of dicts: nothing to check one by one. A missing or empty qrels dict is falsy.
        judged = list(map(qrels.get, run))
        judgements = cast("list[Mapping[str, int]]", list(compress(judged, judged)))
        return list(compress(run, judged)), list(compress(run.values(), judged)), judgements
    qids: list[str] = []
    for qid, docs in run.items():
        check_mapping(docs, f"run[{qid!r}]")
        judged_docs = qrels.get(qid)
        if judged_docs is None:
            continue
        check_mapping(judged_docs, f"qrels[{qid!r}]")
        if judged_docs:
            qids.append(qid)
    return qids, [run[q] for q in qids], [qrels[q] for q in qids]
