"""End to end: a local fleet fake and the Anthropic fake (answers and scripted grades, through the real SDK) produce a
report whose tiering advice matches the scripted truth: local as good on one category, clearly worse on another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeAnthropic, FakeOpenAI, RecordedRequest, Reply
from harness.fakes.anthropic import grade_json

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
DOCS = ["code-r905-1-2-marlow", "code-r905-1-2-model", "code-r905-1-2-port-ellis", "code-s500-drying-industry",
        "est-clm-24-0117-carrier", "est-clm-24-0117-contractor"]
CASES_PER_CATEGORY = 6


def suite_text() -> str:
    cases = []
    for category, topic in (("code-section", "code"), ("jurisdiction", "county")):
        for i in range(CASES_PER_CATEGORY):
            cases.append(
                f"  - {{id: {topic}-{i}, question: 'Question {i} about the {topic} rule?', "
                f"reference: 'At least 36 inches inside the wall.', relevant: {{{DOCS[i]}: 3}}, "
                f"category: {category}, generate: true}}"
            )
    return (
        f"name: drift\ncorpus: {FIXTURE}\nk: 3\nmetrics: [recall@3]\nvariants:\n  - {{name: bm25, retriever: bm25}}\n"
        "generation: {context_chunks: 1, max_tokens: 32, tiers: [local, cloud]}\n"
        "grading: {rate: 1.0}\n"
        "advice: {tolerance: 0.05, calls_per_day: 1000}\n"
        "cases:\n" + "\n".join(cases) + "\n"
    )


def local_answer(request: RecordedRequest) -> Reply:
    """The truth: the fleet answers code questions as well as the cloud, and county questions wrongly."""
    prompt = json.dumps(request.body)
    if "about the county rule" in prompt:
        return Reply.ok("WRONG: 12 inches is enough everywhere.", latency=0.01)
    return Reply.ok("At least 36 inches inside the wall.", latency=0.01)


def cloud_answer(request: RecordedRequest) -> Reply:
    if "output_config" not in request.body:  # an answer, not a grade
        return Reply.ok("At least 36 inches inside the wall.")
    answer = request.body["messages"][0]["content"].split("<answer>")[1].split("</answer>")[0]
    if "WRONG" in answer:
        return Reply.ok(grade_json(0, 0, 0, confident_but_wrong=True, rationale="Contradicts the reference."))
    return Reply.ok(grade_json(3, 3, 3))


def test_the_advice_matches_the_scripted_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "drift.yaml"
    suite.write_text(suite_text(), encoding="utf-8")
    with FakeOpenAI(script=local_answer) as local, FakeAnthropic(script=cloud_answer) as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = tmp_path / "fleet.yaml"
        host = (f"{{name: h0, url: '{local.url}', kind: openai, endpoint: completion, model: gemma3-270m, "
                "cost: {watts: 65, usd_per_kwh: 0.15, hardware_usd_per_hour: 0.02}}")
        fleet.write_text(f"strategy: single\ntimeout_s: 5\nfallback: none\nhosts:\n  - {host}\n", encoding="utf-8")
        result = CliRunner().invoke(app, ["run", str(suite), "--run-id", "e2e", "--fleet", str(fleet), "--budget", "5",
                                          "--quiet"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    report = (tmp_path / "reports" / "drift" / "e2e" / "report.md").read_text()
    advice = report.split("## Tiering advice")[1].split("\n## ")[0]
    assert report.index("## Tiering advice") < report.index("## Overview")
    assert "| code-section | **local** |" in advice
    assert "| jurisdiction | **cloud** |" in advice
    assert "monthly spend, all cloud" in advice and "break-even" in advice
    drift = report.split("## Drift: local − cloud on the graded score")[1].split("\n## ")[0]
    jurisdiction = next(line for line in drift.splitlines() if line.startswith("| jurisdiction |"))
    n = CASES_PER_CATEGORY
    assert f"| {n} | {n} | -1.000 [-1.000, -1.000] n={n}" in jurisdiction
    code = next(line for line in drift.splitlines() if line.startswith("| code-section |"))
    assert "| 0.000 [0.000, 0.000] n=6" in code
    html = (tmp_path / "reports" / "drift" / "e2e" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # latency boxes, forest plot, latency histograms
