"""Parse the grader's reply into the rubric's pydantic model (the middle of call / parse / score)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from harness.config.criteria import CRITERIA
from harness.grading.rubric import RATIONALE_MAX_CHARS, RubricOutput


@dataclass(frozen=True)
class ParsedGrade:
    scores: dict[str, int]
    confident_but_wrong: bool
    rationale: str


@dataclass(frozen=True)
class BadOutput:
    """Why a reply could not be used as a grade (shown in ``grade_error`` after the retry also fails)."""

    reason: str


def parse_grade(text: str | None, stop_reason: str | None = None) -> ParsedGrade | BadOutput:
    """Validate the reply's JSON against ``RubricOutput``; every way it can fail becomes a ``BadOutput``."""
    if stop_reason == "refusal":
        return BadOutput("the grader refused to grade this answer")
    if stop_reason == "max_tokens":
        return BadOutput("the grader's reply was cut off at max_tokens")
    if not text or not text.strip():
        return BadOutput("the grader's reply had no text")
    try:
        output = RubricOutput.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        return BadOutput(f"malformed grader output ({where}: {first.get('msg', 'invalid')})")
    data = output.model_dump()
    rationale = " ".join(str(data["rationale"]).split())[:RATIONALE_MAX_CHARS]
    return ParsedGrade({name: int(data[name]) for name in CRITERIA}, bool(data["confident_but_wrong"]), rationale)
