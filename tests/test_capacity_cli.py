"""``harness fleet bench`` end to end: real HTTP to queueing fake hosts, prompts built from a suite by real BM25
retrieval, the cloud delta against the Anthropic fake through the official SDK, JSON and PNG written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _suites import case, generation, variants, write_suite
from typer.testing import CliRunner

from harness.capacity.schedule import poisson_schedule
from harness.cli.main import app
from harness.fakes import FakeAnthropic, QueueingOllama, Reply


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    # two generation cases, answered from BM25 contexts
    write_suite(tmp_path / "mini.yaml", variants=variants("bm25"), generation=generation(),
                cases=[case("marlow-ice"), case("valleys")])
    return tmp_path


def write_fleet(path: Path, urls: list[str]) -> Path:
    lines = ["timeout_s: 5", "capacity: {volume: 200000, peak_factor: 2}", "hosts:"]
    for index, url in enumerate(urls):
        lines += [f"  - name: h{index}", f"    url: {url}", "    model: llama3.2", "    max_concurrency: 2"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fleet_bench_measures_every_series_and_writes_json_and_chart(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = [QueueingOllama(Reply.ok("36 inches", latency=0.05), max_concurrency=2, name=f"h{i}") for i in range(2)]
    cloud = FakeAnthropic(Reply.ok("At least 36 inches.", latency=0.2))
    for server in [*hosts, cloud]:
        server.start()
    try:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = write_fleet(workdir / "fleet.yaml", [h.url for h in hosts])
        result = CliRunner().invoke(app, [
            "fleet", "bench", "--fleet", str(fleet), "--prompts", "mini.yaml", "--strategies", "race,auto",
            "--rates", "4,12", "--duration", "3", "--cloud-calls", "3", "--out", "out", "--json", "--seed", "7",
        ], catch_exceptions=False)
    finally:
        for server in [*hosts, cloud]:
            server.stop()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    series = {(p["strategy"], p["offered_rate"]): p for p in data["points"]}
    assert set(series) == {(s, r) for s in ("race", "auto", "single (1 host)") for r in (4.0, 12.0)}
    for index, rate in enumerate((4.0, 12.0)):
        expected_calls = len(poisson_schedule(rate, 3.0, max_calls=2000, seed=7 + index))
        for strategy in ("race", "auto", "single (1 host)"):
            point = series[(strategy, rate)]
            assert point["calls"] == expected_calls and point["answered"] == expected_calls
            assert point["latency"]["p50"]["estimate"] >= 0.05  # no answer is faster than the host's service time
    # a race on two hosts sends two requests per call; one box sends one
    assert series[("race", 4.0)]["requests_per_call"] == pytest.approx(2.0, abs=0.05)
    assert series[("single (1 host)", 4.0)]["requests_per_call"] == pytest.approx(1.0)
    assert set(series[("race", 4.0)]["busy_share"]) == {"h0", "h1"}
    # every answered call held one of the box's 2 slots for at least the 50 ms service time, and no host is busy
    # more than all of its slot time (a race loser's time ends when it frees the slot, not when its call settles)
    one_box = series[("single (1 host)", 12.0)]
    assert one_box["answered"] * 0.05 / (one_box["elapsed_s"] * 2) <= one_box["busy_share"]["h0"] <= 1.0
    assert all(0 < share <= 1.0 for share in series[("race", 12.0)]["busy_share"].values())
    # the prompts are the suite's generation cases, retrieved and prompted as a run would
    prompts = {r.body["messages"][-1]["content"] for h in hosts for r in h.requests_to("/api/chat")}
    assert any("Marlow County require ice barrier in valleys" in p for p in prompts)
    assert all("Context" in p or "[" in p for p in prompts)
    assert {k["strategy"] for k in data["knees"]} == {"race", "auto", "single (1 host)"}
    assert data["slo_source"].startswith("2 x unloaded p50")
    assert data["cloud"]["n"] == 2 and data["cloud"]["mean_delta_s"] > 0.1  # 2 prompts; cloud 200 ms slower
    assert data["recommendation"]["peak_rate"] == pytest.approx(200000 / 86400 * 2)
    assert (workdir / "out" / "capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((workdir / "out" / "capacity.json").read_text())["schema_version"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "race,warp"], "unknown strategy 'warp'"),
        (["--rates", "0,5"], "rates must be positive"),
        (["--rates", "5", "--max-rate", "10"], "both given"),
    ],
)
def test_fleet_bench_bad_input_exits_2(workdir: Path, args: list[str], message: str) -> None:
    fleet = write_fleet(workdir / "fleet.yaml", ["http://127.0.0.1:9"])
    result = CliRunner().invoke(app, ["fleet", "bench", "--fleet", str(fleet), "--prompts", "mini.yaml", *args])
    assert result.exit_code == 2
    assert message in result.output
