"""Lift records of older run-store versions to the current models, so old runs stay readable.

Each step lifts one version to the next; :data:`UPGRADES` chains them up to the current version.

- Version 1 wrote plain dicts: the manifest's version was ``version``, records had no version of their own, and the
  grade was one case-level ``{"status", "reason"}`` or ``{"status": "graded", "by_tier": {...}}``.
- Versions 2, 3 and 4 only lack optional fields of the next version (3: a generation's ``context``; 4: its
  ``cache_entry``, the manifest's ``cache`` and the verdict's ``replayed`` counts; 5: each tier's ``kind``, ``model``
  and named ``fleet``): each lifts by its version stamp
  alone, and reads as a run whose context and cache provenance were not recorded (``None``, never empty).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Step = Callable[[dict[str, Any]], dict[str, Any]]

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


def stamp(version: int) -> Step:
    """A step that only stamps ``version``: the newer version added optional fields and removed or renamed none."""

    def lift(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "schema_version": version}

    return lift


STEPS: dict[int, tuple[Step, Step]] = {
    1: (manifest_v1, case_record_v1),
    2: (stamp(3), stamp(3)),
    3: (stamp(4), stamp(4)),
    4: (stamp(5), stamp(5)),
}
"""Version -> (manifest step, case-record step) to the next version."""


def _chain(version: int, which: int) -> Step:
    def lift(data: dict[str, Any]) -> dict[str, Any]:
        for step in sorted(v for v in STEPS if v >= version):
            data = STEPS[step][which](data)
        return data

    return lift


UPGRADES: dict[int, tuple[Step, Step]] = {version: (_chain(version, 0), _chain(version, 1)) for version in STEPS}
"""Version -> (manifest upgrade, case-record upgrade) to the current version."""
