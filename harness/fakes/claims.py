"""Scripted claim verdicts for the Anthropic fake: what the grader's claims call (``harness.grading.claims``) gets.

A test scripts the claims and verdicts it wants with :func:`claims_json`, and routes a claims request apart from a
grade request with :func:`is_claims_request`. Without a script, a claims request gets :func:`default_claims` for
the number of passages its prompt announces: one reference claim and one answer claim, both entailed everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from harness.fakes.script import RecordedRequest

Claim = tuple[str, Sequence[str], str]  # text, verdict per passage, verdict against the other text

_COUNT = re.compile(r'<passages count="(\d+)">')


def claims_json(reference: Sequence[Claim], answer: Sequence[Claim]) -> str:
    """The claims call's structured output, as the grader's reply would carry it."""

    def side(claims: Sequence[Claim]) -> list[dict[str, Any]]:
        return [{"claim": text, "passages": list(passages), "other": other} for text, passages, other in claims]

    return json.dumps({"reference_claims": side(reference), "answer_claims": side(answer)})


def is_claims_request(body: Any) -> bool:
    """Whether a Messages body asks for the claims schema (not the rubric's)."""
    if not isinstance(body, dict):
        return False
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    return isinstance(schema, dict) and "reference_claims" in (schema.get("properties") or {})


def passage_count(body: Any) -> int:
    """The number of passages the claims prompt announces (0 when it announces none)."""
    text = json.dumps(body.get("messages") if isinstance(body, dict) else body)
    match = _COUNT.search(text.replace('\\"', '"'))
    return int(match.group(1)) if match else 0


def default_claims(request: RecordedRequest) -> str:
    count = passage_count(request.body)
    return claims_json([("The reference's claim.", ["entailed"] * count, "entailed")],
                       [("The answer's claim.", ["entailed"] * count, "entailed")])
