"""`harness run` with grading, end to end over loopback fakes (BM25 only, so no embedding model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _suites import case, generation, variants, write_suite
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeAnthropic, FakeOpenAI, Reply
from harness.fakes.anthropic import grade_json
from harness.store.store import RunStore


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    write_suite(
        tmp_path / "graded.yaml",
        name="graded",
        variants=variants("bm25"),
        generation=generation(tiers=["local", "cloud"]),
        grading={"rate": 0.5, "min_per_category": 1, "seed": 4},
        cases=[case("marlow-ice"), case("port-ellis", generate=True), case("valleys")],
    )
    return tmp_path


def fleet_file(path: Path, fake: FakeOpenAI) -> Path:
    path.write_text(
        f"strategy: single\ntimeout_s: 5\nhosts:\n  - {{name: h0, url: '{fake.url}', kind: openai, "
        "model: gemma3-270m}\n",
        encoding="utf-8",
    )
    return path


def run(workdir: Path, *args: str) -> tuple[int, str, Path]:
    result = CliRunner().invoke(app, ["run", str(workdir / "graded.yaml"), *args], catch_exceptions=False)
    run_id = args[args.index("--run-id") + 1]
    return result.exit_code, result.output, workdir / "reports" / "graded" / run_id


def test_graded_run_writes_grades_columns_and_the_coverage_table(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> (
    None
):
    with FakeOpenAI(script=Reply.ok("36 inches")) as local, FakeAnthropic(
        script=lambda r: Reply.ok(grade_json(2, 3, 2, confident_but_wrong=True, rationale="<b>24</b> | not 36"))
        if "output_config" in r.body else Reply.ok("36 inches")
    ) as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        code, output, run_dir = run(workdir, "--run-id", "r1", "--fleet", str(fleet_file(workdir / "f.yaml", local)),
                                    "--budget", "1")  # fmt: skip
    assert code == 0, output
    assert "projected grading cost: up to $" in output and "4 grades of 2 sampled cases" in output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["grader"]["counts"] == {"graded": 4, "unmeasured": 2}
    assert 0 < manifest["grader"]["spent_usd"] <= manifest["grader"]["projected_usd"]
    results = pd.read_parquet(run_dir / "results.parquet")
    for tier in ("local", "cloud"):
        for column in ("grade_status", "grade_score", "grade_correctness", "grade_faithfulness", "grade_completeness",
                       "confident_but_wrong", "grade_rationale", "grader_model", "grade_input_tokens",
                       "grade_output_tokens", "grade_cache_read_input_tokens", "grade_cache_creation_input_tokens",
                       "grade_cost_usd", "grade_batch_id"):  # fmt: skip
            assert f"{tier}.{column}" in results.columns
    graded = results[results["local.grade_status"] == "graded"]
    assert len(graded) == 2 and set(graded["local.grade_correctness"]) == {2}
    assert results[results["local.grade_status"] != "graded"]["local.grade_score"].isna().all()
    report = (run_dir / "report.md").read_text()
    coverage = report.split("### Grader coverage")[1]
    assert "| jurisdiction | 4 | 2 | 2 | 0 |" in coverage and "| code-section | 2 | 2 | 0 | 0 |" in coverage
    assert "| (all) | 6 | 4 | 2 | 0 |" in coverage and "not in the grading sample" in coverage
    assert "<b>" not in (run_dir / "report.html").read_text()


def test_a_tiny_budget_makes_at_most_one_cloud_call_and_exits_zero(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> (
    None
):
    with FakeOpenAI(script=Reply.ok("36 inches")) as local, FakeAnthropic() as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        code, output, run_dir = run(workdir, "--run-id", "r2", "--fleet", str(fleet_file(workdir / "f.yaml", local)),
                                    "--budget", "0.0001", "--quiet")  # fmt: skip
        assert len(cloud.requests_to("/v1/messages")) <= 1
    assert code == 0, output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["budget_exhausted"] is True
    assert manifest["cloud_spent_usd"] <= 0.0001
    rows = list(RunStore.open(run_dir).records())
    for row in rows:
        cloud_answer = row.generations["cloud"]
        assert cloud_answer.status == "skipped" and (cloud_answer.reason or "").startswith("budget: run budget")
        local_grade = row.generations["local"].grade
        assert local_grade.status == "unmeasured" and local_grade.reason is not None
        assert local_grade.reason.startswith(("budget: run budget", "not in the grading sample"))


def test_without_a_key_the_grader_is_skipped_with_a_one_line_reason(workdir: Path) -> None:
    with FakeOpenAI(script=Reply.ok("36 inches")) as local:
        code, output, run_dir = run(workdir, "--run-id", "r3", "--fleet", str(fleet_file(workdir / "f.yaml", local)))
    assert code == 0, output
    assert "grader skipped: ANTHROPIC_API_KEY is not set" in output.replace("\n", " ")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["grader"]["status"] == "skipped" and manifest["grader"]["counts"] == {"unmeasured": 6}
    report = (run_dir / "report.md").read_text()
    assert "- grader skipped: ANTHROPIC_API_KEY is not set: 3" in report
