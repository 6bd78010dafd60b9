"""Replayed answers are never measured: monitoring runs call the models, reports say what came from the cache.

Real runs through the CLI against a loopback llama.cpp fake whose latency is set per run (``fake.script = ...``): the
fake holds each answer that long, so a fresh call's latency is at least that, and a replay's is the old night's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from _runs import fleet_file, invoke, main_exit, records
from _suites import write_suite

from harness.analysis.history import collect
from harness.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, Reply
from harness.report.history_chart import series_points
from harness.run.cache import DB_NAME, ResponseCache

ANSWER = "At least 36 inches inside the exterior wall line."
FAST, SLOW = 0.02, 0.4


def answers(run_dir: Path, tier: str = "local") -> list[dict]:
    return [r["generations"][tier] for r in records(run_dir) if r["generations"]]


def summary(run_dir: Path, tier: str = "local") -> list[dict]:
    """The generation table's rows of ``tier``, as `harness report --json` gives them."""
    rows = json.loads(invoke("report", str(run_dir), "--json"))["generation"]
    return [row for row in rows if row["tier"] == tier]


def verdict_lines(report: str) -> list[str]:
    """The bullet lines of the report's verdict, without their ``- ``."""
    return [line.removeprefix("- ") for line in report.split("## Verdict\n\n")[1].split("\n\n")[0].splitlines()]


def nightly(suite: Path, fleet: Path, *flags: str) -> Path:
    """`harness nightly --fleet F` as the cron job runs it; returns the new run's directory."""
    runs = suite.parent / "reports" / "mini"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    invoke("nightly", "--suite", str(suite), "--fleet", str(fleet), "--reports", str(suite.parent / "reports"),
           *flags)
    [made] = set(runs.iterdir()) - before - {runs / "history.png", runs / "history.svg"}
    return made


def test_two_nightly_runs_in_a_row_measure_the_fleet_each_time(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    with FakeOpenAI(script=Reply.ok(ANSWER, latency=FAST)) as server:
        fleet = fleet_file(workdir / "fleet.yaml", server.url)
        first = nightly(suite, fleet)
        calls = server.generations
        assert calls == 6  # three generation cases × two variants: no answer replayed, not even within the run
        server.script = Reply.ok(ANSWER, latency=SLOW)  # the fleet got twenty times slower overnight
        second = nightly(suite, fleet)
        assert server.generations == 2 * calls  # the second night asked every model again
        replayed = nightly(suite, fleet, "--cache")  # opting back in: every answer comes from the cache
        assert server.generations == 2 * calls
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["cache"] == {"mode": "write-only", "chosen_by": "the default of harness nightly",
                                 "path": ".harness/cache"}
    assert all(not a["cached"] and a["latency_s"] >= SLOW for a in answers(second))
    # the first night filled the cache for later A/B runs (an answer to a prompt already stored is not stored again),
    # and the second night kept those entries
    stored = {a["cache_entry"]["key"] for a in answers(first) if a["cache_entry"]}
    assert len(ResponseCache.open(workdir / ".harness" / "cache")) == len(stored) >= 3
    assert all(a["cache_entry"] is None for a in answers(second))
    assert all(a["cache_entry"]["run_id"] == first.name for a in answers(replayed))
    rows = summary(second)
    assert [row["cached"] for row in rows] == [0, 0]
    assert all(row["latency_p50_s"] >= SLOW for row in rows)  # the new latency, not last night's
    report = (second / "report.md").read_text()
    assert verdict_lines(report)[0].startswith("replayed from the response cache: no answer (cache write-only")
    assert "failed: nothing — every tier that ran answered" in report

    assert json.loads((replayed / "manifest.json").read_text())["cache"]["chosen_by"] == "the --cache flag"
    assert [row["latency_p50_s"] for row in summary(replayed)] == [None, None]
    report = (replayed / "report.md").read_text()
    assert "local tier latency and cost: not measured: all 6 answers replayed from the cache (first made on " in report
    assert "| local | 6 |" not in report  # no latency row for the local tier in the cost table


def test_a_cached_rerun_does_not_show_the_old_latency_as_measured(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=Reply.ok(ANSWER, latency=FAST)) as server:
        fleet = fleet_file(workdir / "fleet.yaml", server.url)
        invoke("run", str(suite), "--run-id", "monday", "--fleet", str(fleet), "--quiet")
        server.script = Reply.ok(ANSWER, latency=SLOW)
        invoke("run", str(suite), "--run-id", "tuesday", "--fleet", str(fleet), "--quiet")
    monday, tuesday = answers(runs / "monday"), answers(runs / "tuesday")
    assert all(a["cached"] for a in tuesday)
    # each replay says where it came from: the run and time of the call that made it, and what served it
    made_at = {a["cache_entry"]["key"]: a["cache_entry"]["made_at"] for a in monday if not a["cached"]}
    for answer in tuesday:
        entry = answer["cache_entry"]
        assert entry["run_id"] == "monday" and entry["made_at"] == made_at[entry["key"]]
        assert (entry["model_digest"], entry["digest_source"]) == (None, "unknown")  # the fake's GGUF is not here
    day = next(iter(made_at.values()))[:10]

    rows = summary(runs / "tuesday")
    assert [(row["answered"], row["cached"], row["latency_p50_s"], row["cost_per_call_usd"]) for row in rows] == [
        (3, 3, None, None), (3, 3, None, None)]
    assert all(row["token_f1"] is not None for row in rows)  # quality still counts the replayed answers
    report = (runs / "tuesday" / "report.md").read_text()
    first = verdict_lines(report)[0]
    assert first.startswith("replayed from the response cache (cache read-write, set by the default of harness run): "
                            f"local 6 of 6 answers (100%; first made on {day})")
    not_measured = f"not measured: all 6 answers replayed from the cache (first made on {day})"
    assert f"failed: not measured, no tier made a call — local tier {not_measured}" in report
    assert f"local tier latency and cost: {not_measured}" in report
    assert f"not measured: local tier cost and latency: {not_measured.removeprefix('not measured: ')}" in report
    manifest = json.loads((runs / "tuesday" / "manifest.json").read_text())
    assert manifest["verdict"]["tiers"]["local"] == {"calls": 0, "answered": 0, "failed": 0, "failure_rate": None,
                                                     "replayed": 6}
    generation_table = report.split("## Generation")[1].split("###")[0]
    assert "| tier | variant | answered | cached |" in generation_table

    # Monday's dense and hybrid contexts coincide for some cases: those hybrid answers were replayed within the run
    monday_rows = summary(runs / "monday")
    assert sum(row["cached"] for row in monday_rows) == sum(a["cached"] for a in monday) == 6 - server.generations
    assert all(row["latency_p50_s"] is not None for row in monday_rows if row["cached"] < row["answered"])


def test_history_draws_the_latency_series_without_a_replayed_night(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    with FakeOpenAI(script=Reply.ok(ANSWER, latency=FAST)) as server:
        fleet = fleet_file(workdir / "fleet.yaml", server.url)
        nights = [nightly(suite, fleet)]
        server.script = Reply.ok(ANSWER, latency=SLOW)
        nights.append(nightly(suite, fleet, "--cache"))  # replays the first night's answers, latency included
        nights.append(nightly(suite, fleet))
    data = json.loads(invoke("history", "mini", "--reports", str(workdir / "reports"), "--json"))
    latency = {row["run"]: row.get("latency_p50_s[local]") for row in data["runs"]}
    assert list(latency) == [night.name for night in nights]
    assert latency[nights[0].name] < SLOW <= latency[nights[2].name]
    assert latency[nights[1].name] is None or latency[nights[1].name] != latency[nights[1].name]  # null or NaN
    assert [row["mostly_replayed"] for row in data["replays"]] == [False, True, False]
    assert data["replays"][1]["replayed_share"] == {"local": 1.0}
    history = collect(workdir / "reports", "mini")
    assert [x for x, _, _ in series_points(history, "latency_p50_s[local]")] == [0, 2]
    assert [x for x, _, _ in series_points(history, "ndcg@5[hybrid]")] == [0, 1, 2]  # retrieval was measured
    text = invoke("history", "mini", "--reports", str(workdir / "reports"))
    assert f"{nights[1].name} (replayed)" in text and f"{nights[0].name} (replayed)" not in text


def test_compare_flags_pairs_that_replayed_the_same_stored_answer(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=Reply.ok(ANSWER, latency=FAST)) as server:
        fleet = str(fleet_file(workdir / "fleet.yaml", server.url))
        invoke("run", str(suite), "--run-id", "a", "--fleet", fleet, "--quiet")
        invoke("run", str(suite), "--run-id", "b", "--fleet", fleet, "--quiet")
        invoke("run", str(suite), "--run-id", "c", "--fleet", fleet, "--quiet", "--fresh")
    replayed = json.loads(invoke("compare", str(runs / "a"), str(runs / "b"), "--json"))
    [note] = [n for n in replayed["notes"] if "same stored answer" in n]
    assert note.startswith("local tier: 6 of 6 answer pairs are the same stored answer in both runs")
    local = [row for row in replayed["rows"] if row["tier"] == "local"]
    assert local and all(row["same_answer"] == row["n"] for row in local)
    assert all(row["same_answer"] is None for row in replayed["rows"] if row["tier"] is None)  # retrieval rows
    fresh = json.loads(invoke("compare", str(runs / "a"), str(runs / "c"), "--json"))
    assert not [n for n in fresh["notes"] if "same stored answer" in n]
    assert all(row["same_answer"] == 0 for row in fresh["rows"] if row["tier"] == "local")
    assert "| same answer |" in invoke("compare", str(runs / "a"), str(runs / "b"))


def test_the_suite_sets_the_mode_and_the_command_line_overrides_it(workdir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(workdir / "mini.yaml", cache="off")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=Reply.ok(ANSWER)) as server:
        fleet = str(fleet_file(workdir / "fleet.yaml", server.url))
        invoke("run", str(suite), "--run-id", "off", "--fleet", fleet, "--quiet")
        assert server.generations == 6 and not (workdir / ".harness" / "cache" / DB_NAME).exists()
        invoke("run", str(suite), "--run-id", "flag", "--fleet", fleet, "--quiet", "--cache")
        made = server.generations
        invoke("run", str(suite), "--run-id", "again", "--fleet", fleet, "--quiet", "--cache")
        assert server.generations == made
        assert main_exit(monkeypatch, "run", str(suite), "--fleet", fleet, "--fresh", "--no-cache") == 2
    assert json.loads((runs / "off" / "manifest.json").read_text())["cache"] == {
        "mode": "off", "chosen_by": "the suite's cache setting", "path": None}
    manifest = json.loads((runs / "flag" / "manifest.json").read_text())
    assert manifest["cache"]["mode"] == "read-write" and manifest["cache"]["chosen_by"] == "the --cache flag"
    assert "--resume flag --cache" in manifest["resume_with"]
    assert all(a["cache_entry"] is None for a in answers(runs / "off"))
    write_suite(suite, cache="sometimes")
    assert main_exit(monkeypatch, "run", str(suite), "--fleet", fleet) == 2


def test_a_replay_records_the_digest_of_the_model_that_made_it(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOllama(script=Reply.ok(ANSWER), models=("gemma3:270m",)) as server:
        (workdir / "fleet.yaml").write_text(
            f"strategy: race\ntimeout_s: 5\nfallback: none\nhosts:\n"
            f"  - {{name: o1, url: '{server.url}', kind: ollama, model: 'gemma3:270m'}}\n", encoding="utf-8")
        invoke("run", str(suite), "--run-id", "made", "--fleet", str(workdir / "fleet.yaml"), "--quiet")
        invoke("run", str(suite), "--run-id", "replayed", "--fleet", str(workdir / "fleet.yaml"), "--quiet")
    entries = [a["cache_entry"] for a in answers(runs / "replayed")]
    digest = hashlib.sha256(b"gemma3:270m").hexdigest()  # what the fake's /api/tags says
    assert all((e["run_id"], e["model_digest"], e["digest_source"]) == ("made", digest, "ollama /api/tags")
               for e in entries)


def test_the_fleet_cloud_latency_delta_counts_fresh_calls_only(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(workdir / "mini.yaml", generation={"context_chunks": 2, "max_tokens": 32,
                                                          "variants": ["dense"]})
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=Reply.ok(ANSWER, latency=FAST)) as local, FakeAnthropic() as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        fleet = str(fleet_file(workdir / "fleet.yaml", local.url))
        invoke("run", str(suite), "--run-id", "first", "--fleet", fleet, "--budget", "1", "--quiet")
        invoke("run", str(suite), "--run-id", "second", "--fleet", fleet, "--budget", "1", "--quiet")
    first = (runs / "first" / "report.md").read_text()
    assert "- latency, fleet − cloud, paired by case (seconds): —" not in first
    second = (runs / "second" / "report.md").read_text()
    assert ("- latency, fleet − cloud, paired by case (seconds): — (needs both tiers to answer the same cases with "
            "fresh calls (replays are not timed))") in second
    for tier in ("local", "cloud"):
        assert f"- not measured: {tier} tier cost and latency: all 3 answers replayed from the cache" in second
    assert "cloud 3 of 3 answers (100%" in verdict_lines(second)[0]
    # grades may use replayed answers: the grader graded the second run's (all replayed) answers as well
    manifest = json.loads((runs / "second" / "manifest.json").read_text())
    assert manifest["grader"]["counts"] == {"graded": 6}
    assert all(a["cached"] for a in answers(runs / "second", "cloud"))
