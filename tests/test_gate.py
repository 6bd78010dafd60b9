"""`harness gate` on real runs of the fixture suite: an A/A pair passes, an injected regression fails, a tier's
failures fail the failure-rate rule, bad rules are bad input (exit 2). JUnit XML is parsed as a CI system would."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _runs import invoke, main_exit, records, write_records
from _suites import write_suite


@pytest.fixture
def runs(mini_runs: Path, mini_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(mini_workdir)
    return mini_runs


@pytest.fixture
def workdir(mini_workdir: Path) -> Path:
    return mini_workdir


def junit(path: Path) -> dict[str, bool]:
    """Test name -> failed, as a CI system reads the file."""
    root = ET.parse(path).getroot()
    return {case.get("name"): case.find("failure") is not None for case in root.iter("testcase")}


def test_an_aa_pair_passes_and_an_injected_regression_fails(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke("gate", str(runs / "cand"), "--baseline", str(runs / "base"))
    assert "gate PASSED" in out and out.count("PASS ") == 5
    assert junit(runs / "cand" / "gate.junit.xml") == {
        "hit@5[variant=hybrid]": False,
        "must_include_recall[tier=local, category=jurisdiction]": False,
        "ndcg@5[variant=hybrid]": False,
        "token_f1[tier=local]": False,
        "failure_rate[tier=local]": False,
    }
    # Inject a regression into a copy of the candidate: hybrid's nDCG drops by 0.5 on every measured case.
    shutil.copytree(runs / "cand", runs / "worse")
    rows = records(runs / "worse")
    for row in rows:
        metrics = row["retrieval"]["metrics"]
        if row["variant"] == "hybrid" and metrics["ndcg@5"] is not None:
            metrics["ndcg@5"] = max(0.0, metrics["ndcg@5"] - 0.5)
    write_records(runs / "worse", rows)
    assert main_exit(monkeypatch, "gate", str(runs / "worse"), "--baseline", str(runs / "base")) == 1
    verdicts = junit(runs / "worse" / "gate.junit.xml")
    assert verdicts["ndcg@5[variant=hybrid]"] is True
    assert sum(verdicts.values()) == 1  # only the injected regression fails
    summary = (runs / "worse" / "gate.md").read_text()
    assert "Deploy gate: FAILED (1 of 5 rules)" in summary and "A/A false-fail rate" in summary


def test_failed_calls_fail_the_failure_rate_rule_and_nothing_passes_on_missing_data(runs: Path) -> None:
    result = invoke("gate", str(runs / "broken"), "--baseline", str(runs / "base"), "--json", code=1)
    data = json.loads(result)
    by_name = {rule["name"]: rule for rule in data["rules"]}
    rate = by_name["failure_rate[tier=local]"]
    assert rate["verdict"] == "fail" and rate["observed"] == 1.0 and rate["n"] == 6
    # Clopper–Pearson for 6 failures in 6 calls: the lower bound solves p**6 = 0.025
    assert rate["high"] == 1.0 and rate["low"] == pytest.approx(0.025 ** (1 / 6))
    answers = by_name["token_f1[tier=local]"]
    assert answers["verdict"] == "fail" and answers["observed"] is None and "no case measured" in answers["reason"]
    assert not data["passed"]


def test_bad_rules_are_bad_input(runs: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main_exit(monkeypatch, "gate", str(runs / "cand")) == 2  # non-inferiority rules need a baseline
    assert "--baseline" in capsys.readouterr().err
    unknown = write_suite(workdir / "unknown.yaml", gate={"thresholds": [{"metric": "ndcg@50", "min": 0.5}]})
    assert main_exit(monkeypatch, "gate", str(runs / "cand"), "--suite", str(unknown)) == 2
    err = capsys.readouterr().err
    assert "gate.thresholds[0].metric" in err and "unknown metric 'ndcg@50'" in err and "ndcg@5" in err
    no_tier = write_suite(workdir / "no_tier.yaml", gate={"thresholds": [{"metric": "token_f1", "min": 0.5}]})
    assert main_exit(monkeypatch, "gate", str(runs / "cand"), "--suite", str(no_tier)) == 2
    assert "tier" in capsys.readouterr().err
    both = write_suite(workdir / "both.yaml", gate={"thresholds": [{"metric": "map", "min": 0.5, "max": 0.9}]})
    assert main_exit(monkeypatch, "gate", str(runs / "cand"), "--suite", str(both)) == 2
    assert "both.yaml:" in capsys.readouterr().err
