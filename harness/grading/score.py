"""The pure scoring step: criterion scores to one overall score in 0..1."""

from __future__ import annotations

from collections.abc import Mapping

from harness.config.criteria import CRITERIA, SCALE_MAX


def overall_score(scores: Mapping[str, int]) -> float:
    """Mean of the criteria, each scaled to 0..1: ``sum(s_c / SCALE_MAX) / |C|`` over the rubric's criteria.

    Raises:
        ValueError: a criterion is missing or outside 0..SCALE_MAX (the parser never lets that through).
    """
    missing = [name for name in CRITERIA if name not in scores]
    if missing:
        raise ValueError(f"missing criterion score(s): {', '.join(missing)}")
    bad = {name: scores[name] for name in CRITERIA if not 0 <= scores[name] <= SCALE_MAX}
    if bad:
        raise ValueError(f"scores outside 0..{SCALE_MAX}: {bad}")
    return sum(scores[name] / SCALE_MAX for name in CRITERIA) / len(CRITERIA)
