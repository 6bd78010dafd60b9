"""Lift records of older run-store versions to the current models, so old runs stay readable.

Version 1 wrote plain dicts: the manifest's version was ``version``, records had no version of their own, and the grade
was one case-level ``{"status", "reason"}`` or ``{"status": "graded", "by_tier": {...}}``.
"""

from __future__ import annotations

from typing import Any

_V1_GRADER_KEYS = {"grader": "grader_model"}


def manifest_v1(data: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in data.items() if key != "version"}
    out["schema_version"] = 2
    return out


def case_record_v1(data: dict[str, Any]) -> dict[str, Any]:
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


UPGRADES = {1: (manifest_v1, case_record_v1)}
"""Version -> (manifest upgrade, case-record upgrade) to the current version."""
