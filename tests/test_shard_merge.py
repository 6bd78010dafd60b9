"""Sharding and merging, and a run killed halfway then resumed: each compared with one uninterrupted, unsharded run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _runs import fleet_file, invoke, main_exit, records
from _suites import write_suite

from harness.config.suite import Case, Suite
from harness.errors import InputError
from harness.fakes import FakeOpenAI, Reply
from harness.fakes.script import RecordedRequest
from harness.run.shard import parse_shard, shard_of, shard_suite

REPO = Path(__file__).resolve().parent.parent


def answer_for(request: RecordedRequest) -> Reply:
    import hashlib

    digest = hashlib.sha256(json.dumps(request.body, sort_keys=True).encode()).hexdigest()[:10]
    return Reply.ok(f"At least 36 inches ({digest})", latency=0.3)


def by_key(run_dir: Path) -> dict[tuple[str, str], dict]:
    rows = records(run_dir)
    keys = [(r["case_id"], r["variant"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate records"
    return dict(zip(keys, rows, strict=True))


def assert_same_results(a: Path, b: Path) -> None:
    left, right = by_key(a), by_key(b)
    assert left.keys() == right.keys()
    for key, row in left.items():
        other = right[key]
        assert row["retrieval"]["metrics"] == other["retrieval"]["metrics"], key
        # A question is embedded in a batch with the other questions of its shard, and a batch's arithmetic differs
        # in the last bits with its company: the same documents in the same order, scores equal to float32 precision.
        assert [doc for doc, _ in row["retrieval"]["ranked"]] == [doc for doc, _ in other["retrieval"]["ranked"]], key
        assert [score for _, score in row["retrieval"]["ranked"]] == pytest.approx(
            [score for _, score in other["retrieval"]["ranked"]], abs=1e-5), key
        for tier, answer in row["generations"].items():
            assert answer["status"] == other["generations"][tier]["status"] == "ok"
            assert answer["text"] == other["generations"][tier]["text"], key
            theirs = other["generations"][tier]["answer_metrics"]
            assert answer["answer_metrics"] == pytest.approx(theirs, abs=1e-6), key  # embeddings batched: last bits


def test_shards_are_stable_disjoint_and_cover_the_suite() -> None:
    cases = [Case(id=f"case-{i:03d}", question="q", category="c") for i in range(200)]
    suite = Suite(name="s", cases=cases)
    parts = [shard_suite(suite, i, 4)[0] for i in range(1, 5)]
    ids = [c.id for part in parts for c in part.cases]
    assert sorted(ids) == sorted(c.id for c in cases)  # disjoint and complete
    assert all(30 <= len(part.cases) <= 70 for part in parts)  # roughly even
    grown = Suite(name="s", cases=[Case(id="new-case", question="q", category="c"), *cases[::-1]])
    assert {c.id for c in shard_suite(grown, 2, 4)[0].cases} - {"new-case"} == {c.id for c in parts[1].cases}
    assert shard_of("case-007", 4) == shard_of("case-007", 4)
    for bad in ("0/2", "3/2", "1/0", "a/b", "1-2"):
        with pytest.raises(InputError):
            parse_shard(bad)


def test_two_shards_merged_equal_the_unsharded_run(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=answer_for) as server:
        fleet = str(fleet_file(workdir / "fleet.yaml", server.url))
        invoke("run", str(suite), "--run-id", "whole", "--fleet", fleet, "--quiet", "--no-cache")
        invoke("run", str(suite), "--run-id", "s1", "--fleet", fleet, "--quiet", "--no-cache", "--shard", "1/2")
        invoke("run", str(suite), "--run-id", "s2", "--fleet", fleet, "--quiet", "--no-cache", "--shard", "2/2")
    assert {r["case_id"] for r in records(runs / "s1")}.isdisjoint({r["case_id"] for r in records(runs / "s2")})
    out = json.loads(invoke("merge", str(runs / "s1"), str(runs / "s2"), "--run-id", "joined", "--json"))
    assert out["status"] == "complete" and out["records"] == out["expected"] == 12 and out["missing"] == []
    assert_same_results(runs / "whole", runs / "joined")
    manifest = json.loads((runs / "joined" / "manifest.json").read_text())
    assert manifest["shard"]["merged_from"] == ["s1", "s2"] and manifest["suite"]["cases"] == 4
    assert (runs / "joined" / "report.md").is_file()
    # one shard twice: duplicates, refused
    assert main_exit(monkeypatch, "merge", str(runs / "s1"), str(runs / "s1"), "--run-id", "dup") == 2
    assert "appear in two shards" in capsys.readouterr().err
    # a shard of another version of the suite file: refused, naming what differs
    shutil.copytree(runs / "s2", runs / "s2-other")
    other = json.loads((runs / "s2-other" / "manifest.json").read_text())
    other["suite"]["sha256"] = "0" * 64
    other["corpus"]["fingerprint"] = "1" * 64
    (runs / "s2-other" / "manifest.json").write_text(json.dumps(other))
    assert main_exit(monkeypatch, "merge", str(runs / "s1"), str(runs / "s2-other"), "--run-id", "mixed") == 2
    err = capsys.readouterr().err
    assert "suite file (sha256) differs" in err and "corpus (fingerprint) differs" in err
    # a missing shard: the merged run is partial, says what is missing, and exits 3
    assert main_exit(monkeypatch, "merge", str(runs / "s1"), "--run-id", "half") == 3
    assert "shard 2/2" in capsys.readouterr().err
    assert json.loads((runs / "half" / "manifest.json").read_text())["status"] == "partial"
    # a whole run is not a shard
    assert main_exit(monkeypatch, "merge", str(runs / "whole"), "--run-id", "nope") == 2


def test_a_run_killed_halfway_and_resumed_equals_an_uninterrupted_run(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=answer_for) as server:
        fleet = str(fleet_file(workdir / "fleet.yaml", server.url))
        invoke("run", str(suite), "--run-id", "straight", "--fleet", fleet, "--quiet", "--no-cache")
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        command = [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--run-id", "killed", "--fleet",
                   fleet, "--quiet", "--no-cache", "--concurrency", "1"]
        child = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = runs / "killed" / "cases.jsonl"
        deadline = time.monotonic() + 240
        try:
            # the six retrieval-only records come first; kill once the first generation records are in
            while time.monotonic() < deadline and child.poll() is None:
                if log.exists() and len(log.read_text().splitlines()) >= 8:
                    break
                time.sleep(0.05)
            assert child.poll() is None, "the run finished before it could be killed"
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=30)
        written = len(log.read_text().splitlines())
        assert 8 <= written < 12
        invoke("run", str(suite), "--resume", "killed", "--fleet", fleet, "--quiet", "--no-cache")
    assert json.loads((runs / "killed" / "manifest.json").read_text())["status"] == "complete"
    assert_same_results(runs / "straight", runs / "killed")
