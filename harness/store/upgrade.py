"""Lift records of older run-store versions to the current models, so old runs stay readable.

Version 1 wrote plain dicts: the manifest's version was ``version``, records had no version of their own, and the grade
was one case-level ``{"status", "reason"}`` or ``{"status": "graded", "by_tier": {...}}``.

Version 2 had no ``generations[tier].context``; it reads as ``None`` (not recorded), which the model's default gives,
so lifting 2 to 3 only stamps the version. Each step lifts one version; :data:`UPGRADES` chains them to the current.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_V1_GRADER_KEYS = {"grader": "grader_model"}


Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


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


def stamp_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 to 3: nothing was removed or renamed; the new optional fields keep their defaults."""
    return {**data, "schema_version": 3}


def _chain(*steps: Upgrade) -> Upgrade:
    def run(data: dict[str, Any]) -> dict[str, Any]:
        for step in steps:
            data = step(data)
        return data

    return run


UPGRADES: dict[int, tuple[Upgrade, Upgrade]] = {
    1: (_chain(manifest_v1, stamp_v3), _chain(case_record_v1, stamp_v3)),
    2: (stamp_v3, stamp_v3),
}
"""Version -> (manifest upgrade, case-record upgrade) to the current version."""
