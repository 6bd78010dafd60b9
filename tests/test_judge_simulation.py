"""The grader correction against a known truth, 2,000 replications at the nightly's size (see judge_sim.World).

80 cases answered by both tiers, 40% graded, 20 graded cases labelled on both tiers (40 labelled answers; 30 and 60
are checked too). Monte Carlo error of a coverage from 2,000 replications: about ±0.5 points (one SD); over
6,000 replications the corrected interval covers 94.4% with an unbiased grader, so a run of 2,000 falls outside
93-97% about 0.3% of the time.
"""

from __future__ import annotations

import numpy as np
import pytest
from judge_sim import World, covers, replicate, width

REPLICATIONS = 2000


def test_a_self_preferring_grader_biases_the_gap_and_people_correct_it() -> None:
    world = World(cloud_bias=0.08)
    draws = replicate(world, REPLICATIONS, seed=11)
    uncorrected = np.array([d.uncorrected.estimate for d in draws])
    corrected_coverage = np.mean([covers(d.corrected, world.true_gap) for d in draws])
    preference_coverage = np.mean([covers(d.self_preference, world.cloud_bias) for d in draws])
    # the grader's gap (local - cloud) is pushed down by its cloud bonus
    assert np.mean(uncorrected) - world.true_gap == pytest.approx(-0.08, abs=0.01)
    assert np.mean([covers(d.uncorrected, world.true_gap) for d in draws]) < 0.5
    assert np.mean([d.corrected.estimate for d in draws]) == pytest.approx(world.true_gap, abs=0.005)
    assert 0.93 <= corrected_coverage <= 0.97
    assert 0.93 <= preference_coverage <= 0.97


@pytest.mark.parametrize("labelled_cases", [15, 30])  # 30 and 60 labelled answers
def test_the_correction_covers_at_the_ends_of_the_labelling_range(labelled_cases: int) -> None:
    world = World(cloud_bias=0.08, labelled_cases=labelled_cases)
    draws = replicate(world, REPLICATIONS, seed=12)
    assert 0.93 <= np.mean([covers(d.corrected, world.true_gap) for d in draws]) <= 0.97
    assert 0.93 <= np.mean([covers(d.self_preference, world.cloud_bias) for d in draws]) <= 0.97


def test_with_an_unbiased_grader_the_correction_costs_little_width() -> None:
    world = World(cloud_bias=0.0)
    draws = replicate(world, REPLICATIONS, seed=7)
    ratio = np.mean([width(d.corrected) for d in draws]) / np.mean([width(d.uncorrected) for d in draws])
    assert ratio <= 1.15
    # the grader-only PPI++ normal interval runs a little short at n=32 graded pairs (93.4% over 6,000 replications)
    assert 0.92 <= np.mean([covers(d.uncorrected, world.true_gap) for d in draws]) <= 0.97
    assert 0.93 <= np.mean([covers(d.corrected, world.true_gap) for d in draws]) <= 0.97
