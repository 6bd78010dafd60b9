"""What a grade is: the record every graded, ungraded or failed (case, variant, tier) carries.

An unmeasured grade says why (not sampled, no key, budget); a grade_error says what went wrong. Neither carries a
score, so a report can count them and never average a missing grade in as zero or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GradeStatus = Literal["graded", "unmeasured", "grade_error"]


class GradeRecord(BaseModel):
    """The grader's verdict on one tier's answer (filled in by the grader; unmeasured with a reason otherwise)."""

    # The run record's ``generations[tier].grade``: an unknown field is an error, as in every run-store record.
    model_config = ConfigDict(extra="forbid")

    status: GradeStatus
    reason: str | None = None
    scores: dict[str, int] | None = Field(default=None, description="criterion -> ordinal value")
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="overall, normalised to 0..1")
    confident_but_wrong: bool | None = None
    rationale: str | None = None
    grader_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    batch_id: str | None = None

    @classmethod
    def unmeasured(cls, reason: str) -> GradeRecord:
        return cls(status="unmeasured", reason=reason)


@dataclass
class Spend:
    """Tokens and dollars of the grader calls behind one grade (a retry adds up)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = 0.0
    calls: int = 0
    unpriced: list[str] = field(default_factory=list)

    def add(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, cost: float | None) -> None:
        self.calls += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read
        self.cache_write_tokens += cache_write
        # an unpriced call makes the total unknown, never a silent zero
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def fields(self) -> dict[str, Any]:
        if not self.calls:
            return {}
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": self.cost_usd,
        }
