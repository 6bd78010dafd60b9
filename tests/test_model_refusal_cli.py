"""Retired models, end to end over loopback fakes. The Anthropic fake refuses retired ids (claude-sonnet-4-5 among
them) with 404 not_found_error, as the real API does; "today" is given through HARNESS_TODAY, never the clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anthropic
import pytest
from _suites import case, generation, variants, write_suite
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import ProviderError
from harness.fakes import FakeAnthropic, FakeOpenAI, Reply
from harness.fakes.anthropic import grade_json
from harness.money import costs
from harness.money.lifecycle import TODAY_ENV
from harness.providers.anthropic_cloud import AnthropicProvider
from harness.providers.types import GenerationRequest
from harness.store.store import RunStore

RETIRED = "claude-sonnet-4-5"
SOURCE = "https://platform.claude.com/docs/en/about-claude/model-deprecations"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    monkeypatch.delenv(costs.PRICING_ENV, raising=False)
    monkeypatch.setenv(TODAY_ENV, "2026-12-07")
    costs.use_pricing()
    return tmp_path


def write(workdir: Path, **grading: object) -> Path:
    return write_suite(
        workdir / "gen.yaml",
        name="gen",
        variants=variants("bm25"),
        generation=generation(tiers=["local", "cloud"]),
        grading={"rate": 1.0, "min_per_category": 1, **grading},
        cases=[case("marlow-ice"), case("valleys")],
    )


def fleet_file(path: Path, fake: FakeOpenAI, extra: str = "") -> Path:
    path.write_text(
        f"strategy: single\ntimeout_s: 5\n{extra}hosts:\n  - {{name: h0, url: '{fake.url}', kind: openai, "
        "model: gemma3-270m}\n",
        encoding="utf-8",
    )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def answering(request) -> Reply:
    return Reply.ok(grade_json(3, 3, 2)) if "output_config" in request.body else Reply.ok("36 inches")


def test_the_fake_refuses_the_retired_model_as_the_real_api_does() -> None:
    async def call(url: str) -> None:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=url, max_retries=0)
        try:
            with pytest.raises(anthropic.NotFoundError) as caught:
                await client.messages.create(model=RETIRED, max_tokens=5, messages=[{"role": "user", "content": "q"}])
            body = caught.value.body
            assert isinstance(body, dict) and body["type"] == "error" and body["request_id"].startswith("req_")
            assert body["error"] == {"type": "not_found_error", "message": f"model: {RETIRED}"}
            with pytest.raises(anthropic.NotFoundError):
                await client.models.retrieve(f"{RETIRED}-20250929")
            assert RETIRED not in [m.id async for m in await client.models.list()]
            ok = await client.messages.create(model="claude-sonnet-4-6", max_tokens=5,
                                              messages=[{"role": "user", "content": "q"}])  # fmt: skip
            assert ok.model == "claude-sonnet-4-6"
        finally:
            await client.close()

    with FakeAnthropic() as fake:
        asyncio.run(call(fake.url))


def test_a_batch_entry_naming_a_retired_model_errors_with_not_found() -> None:
    async def call(url: str) -> list:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=url, max_retries=0)
        try:
            params = {"max_tokens": 5, "messages": [{"role": "user", "content": "q"}]}
            batch = await client.messages.batches.create(requests=[
                {"custom_id": "old", "params": {"model": RETIRED, **params}},
                {"custom_id": "new", "params": {"model": "claude-sonnet-4-6", **params}},
            ])  # type: ignore[list-item]  # fmt: skip
            await client.messages.batches.retrieve(batch.id)
            return [entry async for entry in await client.messages.batches.results(batch.id)]
        finally:
            await client.close()

    with FakeAnthropic() as fake:
        entries = {e.custom_id: e.result for e in asyncio.run(call(fake.url))}
    assert entries["new"].type == "succeeded"
    assert entries["old"].type == "errored"
    assert entries["old"].error.error.type == "not_found_error"  # type: ignore[union-attr]
    assert entries["old"].error.error.message == f"model: {RETIRED}"  # type: ignore[union-attr]


def test_at_run_time_a_not_found_model_is_explained_from_the_pricing_table(workdir: Path) -> None:
    async def call(url: str) -> ProviderError:
        provider = AnthropicProvider(RETIRED, api_key="k", base_url=url, max_retries=2)
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.generate(GenerationRequest(prompt="q", max_tokens=5))
        finally:
            await provider.aclose()
        return caught.value

    with FakeAnthropic() as fake:
        error = asyncio.run(call(fake.url))
        assert len(fake.requests_to("/v1/messages")) == 1  # not retried
    assert error.message == f"cloud: model {RETIRED} is not available (retired on 2026-11-30 per pricing.yaml)"
    assert error.status == 404 and not error.retryable and "claude-sonnet-4-6" in error.hint


def test_a_generation_suite_with_the_defaults_runs_and_grades_against_an_api_that_refuses_the_old_default(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write(workdir)
    with FakeOpenAI(script=Reply.ok("36 inches")) as local, FakeAnthropic(script=answering) as cloud:
        assert RETIRED in cloud.retired
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = fleet_file(workdir / "f.yaml", local)
        code, output = invoke("run", str(suite), "--run-id", "r1", "--fleet", str(fleet), "--budget", "1", "--quiet")
        models = {r.body.get("model") for r in cloud.requests_to("/v1/messages")}
    assert code == 0, output
    assert models == {"claude-sonnet-4-6"}
    run_dir = workdir / "reports" / "gen" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model_warnings"] == []
    assert manifest["grader"]["model"] == "claude-sonnet-4-6"
    assert manifest["grader"]["counts"] == {"graded": 4}
    for record in RunStore.open(run_dir).records():
        for tier in ("local", "cloud"):
            answer = record.generations[tier]
            assert answer.status == "ok" and answer.grade is not None and answer.grade.status == "graded"


@pytest.mark.parametrize("where", ["grading", "fleet", "flag"])
def test_a_run_naming_the_retired_model_exits_2_before_any_call(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    suite = write(workdir, model=RETIRED) if where == "grading" else write(workdir)
    with FakeOpenAI(script=Reply.ok("36 inches")) as local, FakeAnthropic(script=answering) as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        extra = f"cloud_model: {RETIRED}\n" if where == "fleet" else ""
        fleet = fleet_file(workdir / "f.yaml", local, extra)
        flag = ["--cloud-model", RETIRED] if where == "flag" else []
        code, output = invoke("run", str(suite), "--run-id", "r1", "--fleet", str(fleet), *flag)
        assert cloud.requests == [] and local.requests == []
    text = " ".join(output.split())
    assert code == 2, output
    assert f"{RETIRED}, which retired on 2026-11-30" in text and SOURCE in text
    assert "use its successor claude-sonnet-4-6" in text and "Traceback" not in output
    expected = {"grading": "gen.yaml:", "fleet": "f.yaml:3: cloud_model:", "flag": "--cloud-model"}[where]
    assert expected in text
    assert not (workdir / "reports" / "gen" / "r1").exists()  # refused before the run directory was claimed


def test_without_a_key_a_retired_grader_is_still_refused(workdir: Path) -> None:
    suite = write(workdir, model=f"{RETIRED}-20250929")
    with FakeOpenAI(script=Reply.ok("36 inches")) as local:
        fleet = fleet_file(workdir / "f.yaml", local)
        code, output = invoke("run", str(suite), "--run-id", "r1", "--fleet", str(fleet))
        assert local.requests == []
    assert code == 2 and "retired on 2026-11-30" in " ".join(output.split())


def test_a_model_within_thirty_days_of_retirement_warns_in_the_cli_and_the_report(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TODAY_ENV, "2026-12-30")  # claude-opus-4-5 retires on 2027-01-22: in 23 days
    suite = write(workdir)
    with FakeOpenAI(script=Reply.ok("36 inches")) as local, FakeAnthropic(script=answering) as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = fleet_file(workdir / "f.yaml", local)
        code, output = invoke("run", str(suite), "--run-id", "r1", "--fleet", str(fleet),
                              "--cloud-model", "claude-opus-4-5", "--budget", "1", "--quiet")  # fmt: skip
    assert code == 0, output
    text = " ".join(output.split())
    assert "warning: claude-opus-4-5 (--cloud-model for the cloud tier) retires on 2027-01-22, in 23 days" in text
    run_dir = workdir / "reports" / "gen" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["model_warnings"]) == 1 and "--cloud-model" in manifest["resume_with"]
    verdict = (run_dir / "report.md").read_text().split("## Verdict")[1].split("## Contents")[0]
    assert "model retiring soon" in verdict and "claude-opus-4-5" in verdict and "2027-01-22" in verdict


def test_harness_models_lists_prices_status_dates_and_sources(workdir: Path) -> None:
    code, output = invoke("models", "--json")
    assert code == 0, output
    listing = json.loads(output)
    assert listing["on"] == "2026-12-07"
    by_id = {row["id"]: row for row in listing["models"]}
    assert by_id["claude-sonnet-4-6"]["status"] == "current" and by_id["claude-sonnet-4-6"]["prices"]["input"] == 3.0
    old = by_id[RETIRED]
    assert (old["status"], old["retires"], old["successor"], old["lifecycle_source"]) == (
        "retired", "2026-11-30", "claude-sonnet-4-6", SOURCE)  # fmt: skip
    assert (by_id["claude-opus-4-5"]["status"], by_id["claude-opus-4-5"]["days_to_retirement"]) == ("deprecated", 46)
    assert by_id["claude-fable-5-2"]["prices"]["output"] == 40.0
    assert by_id["claude-mythos-preview"]["priced"] is False and by_id["claude-mythos-preview"]["note"]
    code, table = invoke("models")
    row = next(line for line in table.splitlines() if line.startswith(f"{RETIRED} "))
    cells = row.split()  # the cache and batch columns show only on a wide console
    assert code == 0 and cells[:3] == [RETIRED, "retired", "3/15"]
    assert cells[-3:-1] == ["2026-11-30", "claude-sonnet-4-6"]  # then its source's number
    assert SOURCE in table
