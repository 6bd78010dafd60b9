"""Which answers a person is asked to label, and in what order: one choice shared by every labelling front end.

The terminal labeller (``harness label``) and the browser viewer both ask :func:`label_queue`, so a person gets
the same queue from either, and two people with the same seed label the same answers (which is what
inter-labeller agreement needs).

- **Drawn from the graded answers only**: a label is there to be compared with the grader's grade.
- **Stratified by category and tier**: the answers are dealt round-robin from one stratum per (category, tier),
  so any prefix of the queue -- the first 20 labels as much as the first 200 -- spreads evenly over the categories
  and tiers, and the per-tier bias (the self-preference estimate) has labels on every tier early.
- **Paired across tiers**: within a category every tier's stratum is ordered by the same hash of (seed, case,
  variant), so the same questions come up for every tier; the tier difference of biases is then a paired one.
- **Seeded and stable**: the order is a hash, not a draw, so it does not depend on the order of the answers, a
  resumed session continues where it stopped, and answers this labeller has labelled are skipped, never re-asked.
- **Blind**: within each round the answers are ordered by a hash of the whole key, so neither tier nor category
  follows a fixed pattern a labeller could learn.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping

from harness.errors import InputError
from harness.store.labels import AnswerKey, check_labeller
from harness.store.records import CaseRecord


def _rank(seed: int, *parts: str) -> bytes:
    return hashlib.sha256("|".join([f"label-queue:{seed}", *parts]).encode()).digest()


def graded_answers(records: Iterable[CaseRecord]) -> dict[AnswerKey, str]:
    """Every answer the grader graded, with its case's category: the population labels are drawn from."""
    out: dict[AnswerKey, str] = {}
    for record in records:
        for tier, generation in record.generations.items():
            if generation.status == "ok" and generation.grade.status == "graded":
                out[(record.case_id, record.variant, tier)] = record.category
    return out


def label_queue(
    graded: Mapping[AnswerKey, str],
    labeller: str,
    already_labelled: Collection[AnswerKey],
    n: int | None,
    seed: int,
) -> list[AnswerKey]:
    """The next ``n`` answers (all of them for ``None``) for ``labeller`` to label, in the order to ask them.

    Args:
        graded: the run's graded answers with their categories (:func:`graded_answers`, or the viewer's table).
        labeller: who labels (a valid labeller id); the queue itself does not depend on who, so people overlap.
        already_labelled: the answers this labeller has labelled (:func:`harness.store.labels.labelled_by`).
        n: how many to return at most.
        seed: the queue's seed; the same seed gives every labeller the same order.
    """
    check_labeller(labeller)
    if n is not None and n < 0:
        raise InputError(f"the number of answers to label must be 0 or more, not {n}", hint="e.g. --n 30")
    strata: dict[tuple[str, str], list[AnswerKey]] = defaultdict(list)
    for key, category in graded.items():
        strata[(category, key[2])].append(key)
    for (category, _tier), keys in strata.items():
        keys.sort(key=lambda k: (_rank(seed, category, k[0], k[1]), k))
    # Deal round-robin: round r holds the r-th answer of every stratum, shuffled by a hash of the key.
    order: list[AnswerKey] = []
    depth = max((len(keys) for keys in strata.values()), default=0)
    for r in range(depth):
        round_keys = [keys[r] for keys in strata.values() if r < len(keys)]
        round_keys.sort(key=lambda k: (_rank(seed, "round", *k), k))
        order.extend(round_keys)
    done = set(already_labelled)
    queue = [key for key in order if key not in done]
    return queue if n is None else queue[:n]
