"""The rubric's criteria: one registry of names, questions and 0..3 anchors.

Grades, human labels and the frames built from them all key their scores by these names, so the registry sits
below every room that reads or writes a score. The grader's prompt renders it (:mod:`harness.grading.rubric`).
"""

from __future__ import annotations

from dataclasses import dataclass

SCALE_MAX = 3


@dataclass(frozen=True)
class Criterion:
    """One ordinal criterion: what it asks and what each point of its 0..3 scale means."""

    name: str
    asks: str
    anchors: tuple[str, str, str, str]  # for 0, 1, 2, 3


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion(
            "correctness",
            "Does the answer agree with the reference answer on the facts the question asks for?",
            (
                "contradicts the reference on the main point, or answers a different question",
                "partly right, but gets a point that matters wrong",
                "right on the main point; a minor detail is wrong or imprecise",
                "agrees with the reference on every point asked for (wording may differ)",
            ),
        ),
        Criterion(
            "faithfulness",
            "Is every claim in the answer supported by the retrieved passages?",
            (
                "makes a claim the passages contradict",
                "rests mainly on claims the passages do not support",
                "supported, except one minor claim the passages do not contain",
                "every claim is supported by the passages (or the answer correctly says they do not cover it)",
            ),
        ),
        Criterion(
            "completeness",
            "Does the answer cover every part of the reference answer that the question needs?",
            (
                "covers none of the needed parts",
                "covers some needed parts; an important one is missing",
                "covers the needed parts; a secondary detail is missing",
                "covers every needed part",
            ),
        ),
    )
}
