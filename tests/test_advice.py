"""Tiering advice: the rule at the tolerance boundary, N more cases, and the whole chain on records with known truth."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis.advice import decide, shortfall_of, tiering_advice
from harness.analysis.drift import drift_rows
from harness.analysis.tier_costs import host_costs_from_fleet, summarise_costs
from harness.config.advice import AdviceConfig
from harness.metrics.case_values import ALL_CATEGORIES
from harness.metrics.stats.intervals import Interval
from harness.store.frames import generation_frame

sys.path.insert(0, str(Path(__file__).parent))
from drift_records import HOSTS, make_records  # noqa: E402


def interval(estimate: float, low: float, high: float, se: float = 0.02, n: int = 40) -> Interval:
    return Interval(estimate, low, high, n, "test", 0.95, se, n - 1)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.00, 0.0499, "local"),
        (0.00, 0.05, "local"),  # the upper end exactly at the tolerance is within it
        (0.00, 0.0501, "undecided"),
        (0.05, 0.09, "undecided"),  # the lower end exactly at the tolerance is not beyond it
        (0.0501, 0.09, "cloud"),
    ],
)
def test_the_verdict_flips_at_the_tolerance_as_the_interval_says(low: float, high: float, verdict: str) -> None:
    assert decide(interval((low + high) / 2, low, high), 0.05).verdict == verdict


def test_more_cases_by_hand_and_by_simulation() -> None:
    # shortfall 0.10 ± 1.96 × 0.04 at n = 20, tolerance 0.05: n_needed = 20 × (1.96 × 0.04 / 0.05)² = 49.2 -> 30 more.
    z = float(sps.norm.ppf(0.975))
    decision = decide(interval(0.10, 0.10 - z * 0.04, 0.10 + z * 0.04, se=0.04, n=20), 0.05)
    # by hand: 1.95996 x 0.04 / 0.05 = 1.56797; squared 2.45854; x 20 = 49.17 cases in all, 29.17 more: 30
    assert decision.verdict == "undecided" and decision.more_cases == 30
    # With the true shortfall at the estimate, grading that many more separates the interval from the tolerance
    # about half the time or better (the estimate itself moves); the figure is a planning number, not a promise.
    rng = np.random.default_rng(0)
    sd = 0.04 * math.sqrt(20)
    n = 20 + (decision.more_cases or 0)
    separated = np.mean([rng.normal(0.10, sd, n).mean() - z * sd / math.sqrt(n) > 0.05 for _ in range(4000)])
    assert 0.45 <= separated <= 0.6


def test_no_interval_asks_for_enough_cases_to_get_one() -> None:
    tiny = Interval(0.2, None, None, 2, "none", reason="too few cases for an interval (n=2, need 5)")
    decision = decide(tiny, 0.05)
    assert decision.verdict == "undecided" and decision.more_cases == 3 and "too few" in decision.reason
    assert decide(Interval(None, None, None, 0, "none", reason="no graded pair"), 0.05).more_cases is None


def test_shortfall_is_the_gap_turned_around() -> None:
    flipped = shortfall_of(interval(-0.1, -0.2, -0.05))
    assert (flipped.estimate, flipped.low, flipped.high) == (0.1, 0.05, 0.2)


def test_advice_on_records_with_known_truth() -> None:
    gen = generation_frame(make_records(), ["token_f1", "embedding_cosine", "context_support", "abstained"])
    rows = drift_rows(gen)
    by_category = {row.category: row for row in rows}
    assert [row.category for row in rows] == ["code-section", "jurisdiction", ALL_CATEGORIES]
    # local as good on code-section (true gap 0), 0.40 worse on jurisdiction
    assert by_category["code-section"].gap.low < 0 < by_category["code-section"].gap.high  # type: ignore[operator]
    assert by_category["jurisdiction"].gap.high < -0.3  # type: ignore[operator]
    for row in rows:
        assert row.ppi_gap.ppi.high - row.ppi_gap.ppi.low <= row.ppi_gap.classical.high - row.ppi_gap.classical.low  # type: ignore[operator]
        assert row.mdd is not None and row.mdd > 0
    costs = summarise_costs(gen, host_costs_from_fleet({"hosts": [{"name": "h0", "cost": HOSTS["h0"]}]}))
    config = AdviceConfig(tolerance=0.05, calls_per_day=1000)
    advice, projection = tiering_advice(rows, costs, config, {"code-section": 60, "jurisdiction": 60})
    verdicts = {a.category: a.decision.verdict for a in advice}
    assert verdicts == {"code-section": "local", "jurisdiction": "cloud"}
    cloud_call = (800 * 3 + 60 * 15) / 1e6
    assert costs.tiers["cloud"].marginal_usd_per_call == pytest.approx(cloud_call)
    local_marginal = costs.tiers["local"].marginal_usd_per_call
    energy_share = 0.3 * 0.2 / (0.3 * 0.2 + 0.5)
    assert local_marginal == pytest.approx(np.mean(gen[gen.tier == "local"].cost_usd) * energy_share)
    saving = {a.category: a.saving_usd_per_month for a in advice}
    days = 365 / 12  # the one month: 730 hours
    assert saving["code-section"] == pytest.approx(500 * days * (cloud_call - local_marginal))
    assert saving["jurisdiction"] is None
    fixed = 0.5 * 730  # $0.50 an hour of hardware for 730 hours
    assert projection.fleet_fixed_usd == pytest.approx(fixed)
    assert projection.all_cloud_usd == pytest.approx(1000 * days * cloud_call)
    assert projection.advised_split_usd == pytest.approx(fixed + 500 * days * (local_marginal + cloud_call))
    assert projection.break_even_calls_per_month == pytest.approx(fixed / (cloud_call - local_marginal))


def test_the_fixed_cost_and_the_call_volume_share_one_month() -> None:
    gen = generation_frame(make_records(), ["token_f1"])
    hosts = host_costs_from_fleet({"hosts": [{"name": "h0", "cost": HOSTS["h0"]}]})
    config = AdviceConfig(calls_per_day=1000, days_per_month=30)
    costs = summarise_costs(gen, hosts, days_per_month=30)
    _, projection = tiering_advice(drift_rows(gen), costs, config, {"code-section": 60, "jurisdiction": 60})
    assert projection.fleet_fixed_usd == pytest.approx(0.5 * 24 * 30)  # 720 hours of $0.50
    assert projection.monthly_calls == pytest.approx(1000 * 30)
    with pytest.raises(ValueError, match="month"):  # a 730-hour fixed cost beside a 30-day volume is refused
        tiering_advice(drift_rows(gen), summarise_costs(gen, hosts), config, {"code-section": 60})


def test_without_the_cloud_tier_nothing_is_invented() -> None:
    records = make_records(cases_per_category=10)
    for record in records:
        del record.generations["cloud"]
    gen = generation_frame(records, ["token_f1"])
    assert drift_rows(gen) == []
    costs = summarise_costs(gen, {})
    assert "cloud" not in costs.tiers and any("cloud tier" in m for m in costs.missing)
    assert costs.latency_delta.estimate is None and costs.latency_delta.reason
    advice, projection = tiering_advice([], costs, AdviceConfig(), {"code-section": 10, "jurisdiction": 10})
    assert advice == [] and projection.all_cloud_usd is None and projection.advised_split_usd is None
    assert projection.missing


def test_the_advice_section_has_defaults_and_refuses_bad_values_naming_the_line(tmp_path: Path) -> None:
    from harness.config.suite import Suite
    from harness.config.yaml_loader import load_yaml, validate
    from harness.errors import ConfigError

    case = "cases:\n  - {id: a, question: 'q?', category: c, relevant: {d: 1}}\n"
    path = tmp_path / "s.yaml"
    path.write_text(case, encoding="utf-8")
    suite = validate(Suite, load_yaml(path))
    assert suite.advice.tolerance == 0.05 and suite.advice.daily_volume({"c": 3, "d": 1}) == {"c": 750.0, "d": 250.0}
    path.write_text("advice:\n  confidence: 0.9\n  tolerance: -0.1\n" + case, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        validate(Suite, load_yaml(path))
    assert caught.value.line == 3 and caught.value.field == "advice.tolerance"
    path.write_text("advice:\n  calls_per_day: 5\n  calls_per_day_by_category: {c: 1}\n" + case, encoding="utf-8")
    with pytest.raises(ConfigError, match="not both"):
        validate(Suite, load_yaml(path))
