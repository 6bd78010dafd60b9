"""A simulated judge with a known truth, for the correction and self-preference tests (not a test module itself).

At the nightly's size: ``cases`` cases, each answered by the local and the cloud tier; a random ``graded_share`` of
the cases graded on both tiers; ``labelled_cases`` of the graded cases labelled by a person on both tiers (so
2 × labelled_cases labelled answers). Every answer has a true quality q = tier mean + case effect + answer noise;
a person's label is q plus label noise, the grader's grade is q plus the grader's bias on that tier plus grading noise,
and the cheap prediction is q plus its own noise. The truth is the tier means: E[label] = mean, so the true gap
local - cloud is ``means[0] - means[1]`` and a grader's self-preference is its cloud bias minus its local bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.metrics.stats.intervals import Interval
from harness.metrics.stats.ppi import ppi_mean
from harness.metrics.stats.two_stage import combine, mean_term, normal_interval, two_stage_mean


@dataclass(frozen=True)
class World:
    means: tuple[float, float] = (0.62, 0.74)  # local, cloud
    cloud_bias: float = 0.08  # the grader's self-preference: + on the cloud's answers only
    cases: int = 80
    graded_share: float = 0.4
    labelled_cases: int = 20  # 40 labelled answers
    case_sd: float = 0.12
    answer_sd: float = 0.15
    label_sd: float = 0.04
    grade_sd: float = 0.04
    prediction_sd: float = 0.10

    @property
    def true_gap(self) -> float:
        return self.means[0] - self.means[1]


@dataclass(frozen=True)
class Draw:
    """One replication's estimates of the gap (local - cloud) and of the grader's self-preference."""

    uncorrected: Interval
    corrected: Interval
    self_preference: Interval


def draw(world: World, rng: np.random.Generator) -> Draw:
    n = world.cases
    case = rng.normal(0.0, world.case_sd, n)
    q = np.stack([m + case + rng.normal(0.0, world.answer_sd, n) for m in world.means])  # 2 × n
    label = q + rng.normal(0.0, world.label_sd, q.shape)
    grade = q + np.array([[0.0], [world.cloud_bias]]) + rng.normal(0.0, world.grade_sd, q.shape)
    prediction = q + rng.normal(0.0, world.prediction_sd, q.shape)
    order = rng.permutation(n)
    graded = np.zeros(n, bool)
    graded[order[: round(world.graded_share * n)]] = True
    labelled = np.zeros(n, bool)
    labelled[order[: world.labelled_cases]] = True  # a random subset of the graded cases
    gap_grade = np.where(graded, grade[0] - grade[1], np.nan)
    gap_prediction = prediction[0] - prediction[1]
    uncorrected = ppi_mean(gap_grade[graded], gap_prediction[graded], gap_prediction[~graded]).ppi
    ids = np.arange(n)
    error = label - grade  # person minus grader
    corrections = [(1.0, error[0][labelled], ids[labelled]), (-1.0, error[1][labelled], ids[labelled])]
    corrected = two_stage_mean(gap_grade, gap_prediction, ids, corrections)
    preference = combine([(1.0, mean_term(-error[1][labelled], ids[labelled])),
                          (-1.0, mean_term(-error[0][labelled], ids[labelled]))])
    return Draw(uncorrected, corrected, normal_interval(preference, int(labelled.sum()), "bias difference", 0.95))


def replicate(world: World, replications: int, seed: int = 0) -> list[Draw]:
    rng = np.random.default_rng(seed)
    return [draw(world, rng) for _ in range(replications)]


def covers(interval: Interval, truth: float) -> bool:
    assert interval.low is not None and interval.high is not None
    return interval.low <= truth <= interval.high


def width(interval: Interval) -> float:
    assert interval.low is not None and interval.high is not None
    return interval.high - interval.low
