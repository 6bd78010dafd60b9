"""Lift records of older run-store versions to the current models, so old runs stay readable.

Each version has one step to the next; :data:`UPGRADES` chains them to the current version.

- 1 -> 2: version 1 wrote plain dicts: the manifest's version was ``version``, records had no version of their own,
  and the grade was one case-level ``{"status", "reason"}`` or ``{"status": "graded", "by_tier": {...}}``.
- 2 -> 3: a grade's ``cache_read_tokens`` and ``cache_write_tokens`` take the provider's names,
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` (in ``cases.jsonl`` and in ``grades.jsonl``).
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


def _manifest_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "schema_version": 3}


def _case_record_v2(data: dict[str, Any]) -> dict[str, Any]:
    generations = {
        tier: {**generation, "grade": grade_v2(generation["grade"])} if isinstance(generation.get("grade"), dict)
        else generation
        for tier, generation in (data.get("generations") or {}).items()
    }
    return {**data, "schema_version": 3, "generations": generations}


def grade_v2(grade: dict[str, Any]) -> dict[str, Any]:
    """A version-2 grade with the version-3 names (the grade log's entries carry grades of the run's version)."""
    return {_V2_GRADE_KEYS.get(key, key): value for key, value in grade.items()}


_STEPS: dict[int, tuple[Upgrade, Upgrade]] = {1: (_manifest_v1, _case_record_v1), 2: (_manifest_v2, _case_record_v2)}


def _chain(version: int, which: int) -> Upgrade:
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        for step in range(version, max(_STEPS) + 1):
            data = _STEPS[step][which](data)
        return data

    return upgrade


UPGRADES: dict[int, tuple[Upgrade, Upgrade]] = {version: (_chain(version, 0), _chain(version, 1)) for version in _STEPS}
"""Version -> (manifest upgrade, case-record upgrade) to the current version."""
