"""The gate's statistical guarantees, by simulation with known truth.

Per-case model (an assumption, stated here so it can be argued with): a case's true nDCG is Beta(2, 1.3) across cases
(mean 0.61, SD 0.24, as retrieval suites spread); two runs of one system agree on most cases, and on a flaky 20% of
cases (an index rebuild, a different race winner) each run sees the true score plus N(0, 0.15) noise, clipped to
[0, 1]. A true drop of d is the candidate scoring d lower on every case. The suite size is the nightly suite's:
its answerable cases, read from ``suites/nightly.yaml``.

Checked: A/A false fails <= 5% over 600 pairs; the fail rate at several true drops matches what the gate's summary
claims (its normal approximation from the observed SD), within simulation error; the power at a 5-point drop and
the size reaching 80% are printed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis.gate import GateRun, evaluate
from harness.config.gate import GateConfig
from harness.config.suite import load_suite
from harness.metrics.stats.power import ni_fail_probability, ni_size_for_power

NIGHTLY = Path(__file__).parent.parent / "suites" / "nightly.yaml"
METRIC = "ndcg@10"
MARGIN = 0.05
PAIRS = 600
CONFIG = GateConfig.model_validate(
    {
        "non_inferiority": [{"metric": METRIC, "variant": "dense", "margin": MARGIN}],
        "detect_drop": 0.05,
        "resamples": 2000,  # fewer than the default 5000, to keep 2,000 simulated gates quick
    }
)


def nightly_size() -> int:
    suite = load_suite(NIGHTLY)
    return sum(1 for case in suite.cases if any(grade > 0 for grade in case.relevant.values()))


def run_frame(run_id: str, scores: np.ndarray) -> GateRun:
    n = scores.size
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i:03d}" for i in range(n)],
            "variant": "dense",
            "category": "all",
            "unmeasured_reason": None,
            METRIC: scores,
        }
    )
    return GateRun(run_id, frame, pd.DataFrame(), [METRIC])


def observe(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flaky = rng.random(truth.size) < 0.2
    noisy = np.clip(truth + rng.normal(0.0, 0.15, truth.size), 0.0, 1.0)
    return np.where(flaky, noisy, truth)


def simulate(drop: float, n: int, pairs: int, seed: int) -> tuple[float, float, list[int | None]]:
    """(observed fail rate, mean claimed fail rate, claimed sizes for 80%) over ``pairs`` simulated pairs."""
    rng = np.random.default_rng(seed)
    fails = 0
    claimed = []
    sizes = []
    for i in range(pairs):
        truth = rng.beta(2.0, 1.3, n)
        baseline = observe(truth, rng)
        candidate = observe(truth, rng) - drop
        config = CONFIG.model_copy(update={"seed": i})
        result = evaluate(config, run_frame("cand", candidate), run_frame("base", baseline))
        rule = result.rules[0]
        assert rule.power is not None and rule.n == n
        fails += rule.verdict == "fail"
        claimed.append(ni_fail_probability(drop, MARGIN, rule.power.sd, n, confidence=config.confidence))
        sizes.append(rule.power.n_for_target)
    return fails / pairs, float(np.mean(claimed)), sizes


def test_aa_false_fail_rate_is_at_most_five_percent_at_the_nightly_size() -> None:
    n = nightly_size()
    assert n >= 50  # the nightly's answerable cases
    rate, claimed, _ = simulate(0.0, n, PAIRS, seed=1)
    print(f"\nA/A over {PAIRS} pairs, n={n}, margin {MARGIN}: false-fail rate {rate:.1%} (claimed {claimed:.1%})")
    assert rate <= 0.05
    # and the claim is honest: within three binomial standard errors (plus the approximation's slack)
    assert abs(rate - claimed) <= 3 * np.sqrt(max(claimed, 0.01) / PAIRS) + 0.01


@pytest.mark.parametrize("drop", [0.03, 0.05])
def test_a_true_drop_fails_as_often_as_the_summary_claims(drop: float) -> None:
    n = nightly_size()
    rate, claimed, sizes = simulate(drop, n, 500, seed=2)
    tolerance = 3 * np.sqrt(claimed * (1 - claimed) / 500) + 0.03
    print(f"\ntrue drop {drop}: n={n}, margin {MARGIN}: fails {rate:.1%} of 500, the summary claims {claimed:.1%}")
    assert abs(rate - claimed) <= tolerance
    if drop == 0.05:
        median = int(np.median([s for s in sizes if s is not None]))
        print(f"power at a 5-point drop on the nightly's {n} cases: {rate:.1%}; size for 80% with <= 5% A/A: {median}")
        assert rate >= 0.8


def test_size_for_power_meets_both_targets_at_the_boundary() -> None:
    """The size the summary names reaches 80% power and <= 5% A/A false fails, and one case fewer does not."""
    for drop, margin, sd in [(0.05, 0.02, 0.1), (0.05, 0.05, 0.09), (0.04, 0.05, 0.05)]:
        size = ni_size_for_power(drop, margin, sd)
        assert size.n is not None
        assert ni_fail_probability(0.0, margin, sd, size.n) <= 0.05 + 1e-9
        assert ni_fail_probability(drop, margin, sd, size.n) >= 0.8 - 1e-9
        if size.n > 1:
            smaller = size.n - 1
            assert ni_fail_probability(0.0, margin, sd, smaller) > 0.05 or \
                ni_fail_probability(drop, margin, sd, smaller) < 0.8
    assert ni_size_for_power(0.01, 0.05, 0.2).n is None  # a drop well inside the margin is never caught at 80%
