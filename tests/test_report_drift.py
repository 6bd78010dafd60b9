"""The report's advice, drift and cost sections, rendered from typed records with a known truth."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.report import drift_charts, drift_section, markdown
from harness.store.loaded import RunView
from harness.store.records import GenerationRecord, Manifest, SuiteInfo, TierInfo

sys.path.insert(0, str(Path(__file__).parent))
from drift_records import HOSTS, make_records  # noqa: E402

METRICS = ["token_f1", "embedding_cosine", "context_support", "abstained"]


def view_of(records: list, tiers: dict[str, TierInfo], advice: dict | None = None) -> RunView:
    suite = SuiteInfo(name="mini", path="s.yaml", sha256="0" * 64, cases=len(records), variants=["dense"],
                      metrics=["recall@5"], answer_metrics=METRICS, k=5, config={"advice": advice} if advice else {})
    manifest = Manifest(run_id="r1", status="complete", suite=suite, tiers=tiers, pricing_as_of="2026-11-30",
                        fleet={"hosts": [{"name": "h0", "cost": HOSTS["h0"]}]})
    return RunView(Path("/nonexistent"), manifest, records)


def test_the_advice_table_comes_first_and_matches_the_truth() -> None:
    view = view_of(make_records(), {"local": TierInfo(status="run"), "cloud": TierInfo(status="run")},
                   advice={"tolerance": 0.05, "calls_per_day": 2000})
    text = markdown.render(view)
    assert text.index("## Tiering advice") < text.index("## Overview")
    advice = text.split("## Tiering advice")[1].split("## Overview")[0]
    assert "| code-section | **local** |" in advice and "| jurisdiction | **cloud** |" in advice
    # 2,000 calls a day over the one month of 365/12 days
    assert "60,833 calls a month" in advice and "advised split" in advice and "break-even" in advice
    drift = text.split("## Drift: local − cloud on the graded score")[1]
    assert "| jurisdiction | 60 |" in drift and "n=" in drift
    assert "## Cost and latency per tier" in text and "| local |" in text and "| cloud |" in text
    analysis = drift_section.analyse(view)
    assert len(drift_charts.figures(analysis)) == 2  # forest plot and latency histograms


def test_without_the_cloud_tier_every_section_says_what_is_missing() -> None:
    records = make_records(cases_per_category=8)
    for record in records:
        record.generations["cloud"] = GenerationRecord(status="skipped", tier="cloud",
                                                       reason="ANTHROPIC_API_KEY is not set")
    reason = "ANTHROPIC_API_KEY is not set"
    text = markdown.render(view_of(records, {"local": TierInfo(status="run"),
                                             "cloud": TierInfo(status="skipped", reason=reason)}))
    advice = text.split("## Tiering advice")[1].split("## Overview")[0]
    assert "_No advice: the cloud tier did not run (ANTHROPIC_API_KEY is not set)" in advice
    assert "not shown: no priced cloud call" in advice
    assert "$" not in advice.split("_No advice")[1].split("\n")[0]
    drift = text.split("## Drift: local − cloud on the graded score")[1].split("## Cost")[0]
    assert "_Not measured: the cloud tier did not run" in drift
    cost = text.split("## Cost and latency per tier")[1]
    assert "| cloud |" not in cost and "not measured: cloud tier: no successful call" in cost
    assert "needs both tiers to answer the same cases" in cost
    assert drift_charts.forest_plot(drift_section.analyse(view_of(records, {}))) is None


def test_untrusted_category_names_are_escaped() -> None:
    records = make_records(cases_per_category=6, truth={"<b>x|y</b>": (0.8, 0.8)})
    text = markdown.render(view_of(records, {"local": TierInfo(status="run"), "cloud": TierInfo(status="run")}))
    assert "<b>" not in text and "x\\|y" in text
