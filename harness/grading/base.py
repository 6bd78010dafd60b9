"""The seam for sampled grading: a grader scores one answer against the reference, blind to which tier wrote it.

The runner asks the grader only for cases the sampler picked; every other case records its grade as unmeasured, with
the reason, so a report never averages a missing grade as zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Grade:
    status: Literal["graded", "unmeasured"]
    score: float | None = None
    reason: str | None = None
    grader: str | None = None
    rationale: str | None = None

    @classmethod
    def unmeasured(cls, reason: str) -> Grade:
        return cls("unmeasured", reason=reason)


class Grader(Protocol):
    """Scores an answer. Implementations split the model call, the parse and a pure scoring step."""

    name: str

    async def grade(self, question: str, reference: str, answer: str, context: Sequence[str]) -> Grade: ...


def sampled(case_id: str, category: str, rate: float, seed: int = 0) -> bool:
    """Whether a case is in the grading sample: a stable hash per case, so reruns and resumes pick the same cases.

    Hashing within the category keeps every category represented in proportion (stratified by construction).
    """
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}|{category}|{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
