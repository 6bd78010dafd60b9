"""Which cases are graded: a stratified, seeded sample of the generation cases, the same for every tier and variant.

Within each category the cases are ordered by a hash of (seed, category, case id), and the first ``n`` are taken,
where ``n`` meets the category's minimum first and then the rate: ``n = min(size, max(min_per_category,
ceil(rate * size)))``. Because the order is a hash, re-runs and resumes pick the same cases, and adding a case to a
category changes its sample by at most that case.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _rank(seed: int, category: str, case_id: str) -> bytes:
    return hashlib.sha256(f"{seed}|{category}|{case_id}".encode()).digest()


def category_quota(size: int, rate: float, min_per_category: int) -> int:
    """How many of a category's ``size`` cases are graded."""
    return min(size, max(min_per_category, math.ceil(rate * size - 1e-9)))


def stratified_sample(
    cases: Iterable[tuple[str, str]], rate: float, min_per_category: int, seed: int
) -> frozenset[str]:
    """Case ids to grade, from ``(case id, category)`` pairs (the generation cases)."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for case_id, category in cases:
        by_category[category].append(case_id)
    chosen: set[str] = set()
    for category, ids in by_category.items():
        ranked = sorted(set(ids), key=lambda case_id: _rank(seed, category, case_id))
        chosen.update(ranked[: category_quota(len(ranked), rate, min_per_category)])
    return frozenset(chosen)


def shuffled(items: Sequence[T], seed: int) -> list[T]:
    """The grading order: shuffled per run seed, so the grader cannot learn anything from the order of answers."""
    out = list(items)
    random.Random(f"grading-order|{seed}").shuffle(out)
    return out
