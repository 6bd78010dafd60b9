"""Lift records of older run-store versions to the current models, so old runs stay readable.

Each version has one step to the next; :data:`UPGRADES` chains them to the current version.

- 1 -> 2: version 1 wrote plain dicts: the manifest's version was ``version``, records had no version of their own,
  and the grade was one case-level ``{"status", "reason"}`` or ``{"status": "graded", "by_tier": {...}}``.
- 2 -> 3 and 3 -> 4 only added optional fields (3: a generation's ``context``; 4: its ``cache_entry``, the manifest's
  ``cache`` and the verdict's ``replayed`` counts): each lifts by its version stamp alone, and reads as a run whose
  context and cache provenance were not recorded (``None``, never empty).
- 4 -> 5: a grade's ``cache_read_tokens`` and ``cache_write_tokens`` take the provider's names,
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` (in ``cases.jsonl`` and in ``grades.jsonl``). The
  manifest's new optional ``grader.second_judges`` reads as an empty list (only Claude graded), so the manifest lifts
  by its stamp alone. Each tier's new ``kind``, ``model`` and named ``fleet`` are optional too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]

_V1_GRADER_KEYS = {"grader": "grader_model"}
_V2_GRADE_KEYS = {"cache_read_tokens": "cache_read_input_tokens", "cache_write_tokens": "cache_creation_input_tokens"}


def _manifest_v1(data: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in data.items() if key != "version"}
    out["schema_version"] = 2
    return out


def _case_record_v1(data: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in data.items() if key != "grade"}
    out["schema_version"] = 2
    grade = data.get("grade") or {"status": "unmeasured", "reason": "not graded"}
    by_tier = grade.get("by_tier") or {}
    generations = {}
    for tier, generation in (data.get("generations") or {}).items():
        tier_grade = by_tier.get(tier) if by_tier else {"status": grade.get("status"), "reason": grade.get("reason")}
        generations[tier] = {**generation, "grade": _grade_v1(tier_grade or {"status": "unmeasured"})}
    out["generations"] = generations
    return out


def _grade_v1(grade: dict[str, Any]) -> dict[str, Any]:
    out = {_V1_GRADER_KEYS.get(key, key): value for key, value in grade.items() if value is not None}
    if out.get("status") not in ("graded", "unmeasured", "grade_error"):
        out["status"] = "unmeasured"
    if out["status"] == "unmeasured" and not out.get("reason"):
        out["reason"] = "not graded"
    return out


def _stamp(version: int) -> Upgrade:
    """A step that only stamps ``version``: the newer version added optional fields and removed or renamed none."""

    def lift(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "schema_version": version}

    return lift


def _case_record_v4(data: dict[str, Any]) -> dict[str, Any]:
    generations = {
        tier: {**generation, "grade": grade_v2(generation["grade"])} if isinstance(generation.get("grade"), dict)
        else generation
        for tier, generation in (data.get("generations") or {}).items()
    }
    return {**data, "schema_version": 5, "generations": generations}


def grade_v2(grade: dict[str, Any]) -> dict[str, Any]:
    """A grade with the version-5 cache-token names (the grade log's version-1 entries carry the old ones)."""
    return {_V2_GRADE_KEYS.get(key, key): value for key, value in grade.items()}


_STEPS: dict[int, tuple[Upgrade, Upgrade]] = {
    1: (_manifest_v1, _case_record_v1),
    2: (_stamp(3), _stamp(3)),
    3: (_stamp(4), _stamp(4)),
    4: (_stamp(5), _case_record_v4),
}


def _chain(version: int, which: int) -> Upgrade:
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        for step in range(version, max(_STEPS) + 1):
            data = _STEPS[step][which](data)
        return data

    return upgrade


UPGRADES: dict[int, tuple[Upgrade, Upgrade]] = {version: (_chain(version, 0), _chain(version, 1)) for version in _STEPS}
"""Version -> (manifest upgrade, case-record upgrade) to the current version."""
