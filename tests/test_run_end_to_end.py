"""`harness run` end to end on the fixture corpus: real Chroma, real MiniLM, real BM25, real HTTP to loopback fakes.

The retrieval metrics in the run log are checked against pytrec_eval on the rankings the log itself records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _suites as suites
import pandas as pd
import pytest
import pytrec_eval
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeAnthropic, FakeOpenAI, Reply

TREC = {"recall@5": "recall_5", "precision@5": "P_5", "mrr": "recip_rank", "ndcg@5": "ndcg_cut_5", "map": "map"}


def write_suite(path: Path, generation: bool, **sections: Any) -> Path:
    """The mini suite answered by both tiers, or with no answers at all; ``sections`` as for ``_suites.suite``."""
    if generation:
        sections["generation"] = suites.generation(tiers=["local", "cloud"], variants=["dense", "hybrid"])
    else:
        sections.update(generation=None, cases=[suites.case(c, generate=False) for c in suites.CASES])
    return suites.write_suite(path, **sections)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]


def test_retrieval_run_writes_the_store_and_matches_trec_eval(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=False)
    invoke("run", str(suite), "--run-id", "r1", "--quiet")
    run_dir = workdir / "reports" / "mini" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["corpus"]["documents"] == 8 and len(manifest["suite"]["sha256"]) == 64
    assert manifest["versions"]["chromadb"].startswith("1.5")
    rows = records(run_dir)
    assert sorted((r["case_id"], r["variant"]) for r in rows) == sorted(
        (c, v) for c in ["marlow-ice", "valleys", "port-ellis", "nowhere"] for v in ["dense", "bm25", "hybrid"]
    )
    for row in rows:
        if row["case_id"] == "nowhere":
            assert all(value is None for value in row["retrieval"]["metrics"].values())
            assert "not in the corpus" in row["retrieval"]["unmeasured_reason"]
            continue
        ranked = {doc: score for doc, score in row["retrieval"]["ranked"]}
        evaluator = pytrec_eval.RelevanceEvaluator({"q": row["relevant"]}, set(TREC.values()))
        oracle = evaluator.evaluate({"q": ranked})["q"]
        for ours, theirs in TREC.items():
            assert row["retrieval"]["metrics"][ours] == pytest.approx(oracle[theirs], abs=1e-6)
    assert rows[0]["retrieval"]["metrics"]["hit@5"] in (0.0, 1.0)
    results = pd.read_parquet(run_dir / "results.parquet")
    assert len(results) == 12 and {"ndcg@5", "variant", "category"} <= set(results.columns)
    report = (run_dir / "report.md").read_text()
    for variant in ("dense", "bm25", "hybrid"):
        assert f"| {variant} |" in report
    assert "ANN fidelity" in report and "by category" in report
    assert (run_dir / "report.html").read_text().startswith("<!doctype html>")


def test_resume_finishes_an_interrupted_run_without_duplicates(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=False)
    invoke("run", str(suite), "--run-id", "r2", "--quiet")
    run_dir = workdir / "reports" / "mini" / "r2"
    lines = (run_dir / "cases.jsonl").read_text().splitlines()
    # A crash after five records, in the middle of writing the sixth.
    (run_dir / "cases.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])
    invoke("run", str(suite), "--resume", "r2", "--quiet")
    keys = [(r["case_id"], r["variant"]) for r in records(run_dir)]
    assert len(keys) == len(set(keys)) == 12


def test_resume_refuses_a_changed_suite(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=False)
    invoke("run", str(suite), "--run-id", "r3", "--quiet")
    cases = workdir / "reports" / "mini" / "r3" / "cases.jsonl"
    before = cases.read_bytes()
    write_suite(suite, generation=False, k=6)  # a valid suite, only not the one the run was made with
    result = CliRunner().invoke(app, ["run", str(suite), "--resume", "r3"])
    assert result.exit_code == 2, result.output  # bad input: the refusal, not a crash
    assert f"run r3 was made with a different version of {suite}" in result.output
    assert "resume with the suite file it was started with" in result.output
    assert cases.read_bytes() == before  # nothing was added to the run


def fleet_file(path: Path, *fakes: FakeOpenAI) -> Path:
    hosts = "\n".join(
        f"  - {{name: h{i}, url: '{fake.url}', kind: openai, endpoint: completion, model: gemma3-270m, "
        f"cost: {{watts: 65, usd_per_kwh: 0.15, hardware_usd_per_hour: 0.02}}}}"
        for i, fake in enumerate(fakes)
    )
    path.write_text(f"strategy: race\ntimeout_s: 5\nhosts:\n{hosts}\n", encoding="utf-8")
    return path


def test_generation_without_a_key_skips_the_cloud_plainly(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    with FakeOpenAI(script=Reply.ok("36 inches", latency=0.01)) as a, FakeOpenAI(script=Reply.hang()) as b:
        fleet = fleet_file(workdir / "fleet.yaml", a, b)
        invoke("run", str(suite), "--run-id", "g1", "--fleet", str(fleet), "--quiet")
        assert b.disconnects >= 1  # the hanging loser was cancelled when the other host answered
    run_dir = workdir / "reports" / "mini" / "g1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    cloud = manifest["tiers"]["cloud"]
    assert (cloud["status"], cloud["reason"], cloud["kind"]) == ("skipped", "ANTHROPIC_API_KEY is not set", "cloud")
    generated = [r for r in records(run_dir) if r["generations"]]
    assert len(generated) == 3 * 2  # three generation cases × the two generating variants
    for row in generated:
        local, cloud = row["generations"]["local"], row["generations"]["cloud"]
        assert local["status"] == "ok" and local["host"] == "h0" and local["cost_usd"] > 0
        assert local["usage"]["output_tokens"] is not None
        assert (cloud["status"], cloud["tier"], cloud["reason"]) == ("skipped", "cloud", "ANTHROPIC_API_KEY is not set")
        assert cloud["text"] is None and cloud["grade"]["status"] == "unmeasured"
    marlow = next(r for r in generated if r["case_id"] == "marlow-ice")
    assert marlow["generations"]["local"]["answer_metrics"]["must_include_recall"] == 1.0
    report = (run_dir / "report.md").read_text()
    assert "cloud tier not run: ANTHROPIC_API_KEY is not set" in report
    assert "cloud tier: no successful call in this run, so no cloud cost or latency" in report
    assert "_No advice: the cloud tier did not run (ANTHROPIC_API_KEY is not set)" in report
    assert local["answer_metrics"]["context_support"] is not None  # the cheap predictors are recorded too
    assert "embedding_cosine" in local["answer_metrics"]
    assert "| local | hybrid − dense | must_include_recall |" in report
    generation_table = report.split("## Generation")[1].split("###")[0]
    assert "| local | dense |" in generation_table and "| cloud |" not in generation_table


def test_generation_with_the_cloud_tier_compares_the_tiers(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    with FakeOpenAI(script=Reply.ok("36 inches", latency=0.01)) as local, FakeAnthropic() as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = fleet_file(workdir / "fleet.yaml", local)
        invoke("run", str(suite), "--run-id", "g2", "--fleet", str(fleet), "--budget", "1", "--quiet",
               "--no-cache")  # counts calls: dense and hybrid may share a context, which the cache answers once
        answers = [r for r in cloud.requests_to("/v1/messages") if "output_config" not in r.body]
        grades = [r for r in cloud.requests_to("/v1/messages") if "output_config" in r.body]
        assert len(answers) == 6
        # every category has one generation case, so the sample (at least 2 a category) is every case
        assert len(grades) == 3 * 2 * 2
    run_dir = workdir / "reports" / "mini" / "g2"
    generated = [r for r in records(run_dir) if r["generations"]]
    for row in generated:
        answer = row["generations"]["cloud"]
        assert answer["status"] == "ok" and answer["tier"] == "cloud"
        assert answer["usage"]["input_tokens"] > 0 and answer["cost_usd"] > 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    answer_cost = sum(r["generations"]["cloud"]["cost_usd"] for r in generated)
    # the grader and the cloud tier share the run's budget
    assert manifest["grader"]["spent_usd"] > 0 and manifest["grader"]["counts"] == {"graded": 12}
    assert manifest["cloud_spent_usd"] == pytest.approx(answer_cost + manifest["grader"]["spent_usd"])
    report = (run_dir / "report.md").read_text()
    assert "Local minus cloud" in report and "break-even" in report
