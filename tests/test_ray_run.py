"""``harness run --ray`` on a real two-node Ray cluster on loopback: the same records as a local run, each record
exactly once when a worker or the driver is killed, and the fleet's per-host limit kept across the cluster.

The oracle is a local run of the same suite against the same Chroma server (and, for answers, the same fakes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from _ray import ChromaServer, RayCluster, harness_cli, ray_env, session_members
from _suites import CASES, case, suite, variants

from harness.fakes import QueueingOllama, Reply

pytestmark = pytest.mark.ray

ANSWER = "At least 36 inches inside the exterior wall line."


@pytest.fixture
def chroma(ray_chroma: ChromaServer) -> ChromaServer:
    return ray_chroma


def _fleet(path: Path, *fakes: QueueingOllama) -> Path:
    hosts = [{"name": f"h{i}", "url": fake.url, "kind": "ollama", "model": "llama3.2:latest", "max_concurrency": 1}
             for i, fake in enumerate(fakes)]
    path.write_text(yaml.safe_dump({"strategy": "race", "timeout_s": 20, "fallback": "none", "hosts": hosts}))
    return path


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines() if line.strip()]


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """What must agree between a local and a Ray run: everything except timings and which racing host answered.

    Scores are compared apart (:func:`_scores`), and exactly: each side embeds every question as it would be alone,
    whatever batch of other questions it arrives with.
    """
    retrieval = {k: v for k, v in record["retrieval"].items() if k != "latency_s"}
    retrieval["ranked"] = [doc for doc, _ in retrieval["ranked"]]
    generations = {tier: {k: answer.get(k) for k in ("status", "text", "grade")}
                   | {"answer_metrics": {name: value is None for name, value in answer["answer_metrics"].items()}}
                   for tier, answer in record["generations"].items()}
    return {**record, "retrieval": retrieval, "generations": generations}


def _scores(run_dir: Path) -> list[float]:
    """Every document score and answer metric of a run, in one order (case, variant, tier, metric)."""
    out: list[float] = []
    for row in sorted(_records(run_dir), key=lambda row: (row["case_id"], row["variant"])):
        out += [score for _, score in row["retrieval"]["ranked"]]
        for _, answer in sorted(row["generations"].items()):
            out += [value for _, value in sorted(answer["answer_metrics"].items()) if value is not None]
    return out


def _by_key(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    rows = _records(run_dir)
    keyed = {(row["case_id"], row["variant"]): _comparable(row) for row in rows}
    assert len(keyed) == len(rows), "a (case, variant) was recorded twice"
    return keyed


def test_ray_run_equals_local_run_and_keeps_the_per_host_limit(ray_cluster: RayCluster, chroma: ChromaServer,
                                                               tmp_path: Path) -> None:
    suite_path = tmp_path / "mini.yaml"
    suite_path.write_text(yaml.safe_dump(suite(), sort_keys=False))
    env = {"HARNESS_CHROMA_URL": chroma.url, "ANTHROPIC_API_KEY": ""}
    with QueueingOllama(Reply.ok(ANSWER, latency=0.05), max_concurrency=1) as a, \
            QueueingOllama(Reply.ok(ANSWER, latency=0.05), max_concurrency=1) as b:
        fleet = _fleet(tmp_path / "fleet.yaml", a, b)
        common = [str(suite_path), "--fleet", str(fleet), "--no-cache", "--quiet", "--concurrency", "6"]
        local = harness_cli("run", *common, "--run-id", "local", env=env, cwd=tmp_path)
        assert local.returncode == 0, local.stderr
        a.max_in_flight = b.max_in_flight = 0
        on_ray = harness_cli("run", *common, "--run-id", "ray", "--ray", ray_cluster.address, "--ray-case-batch", "2",
                             env=env, cwd=tmp_path)
        assert on_ray.returncode == 0, on_ray.stderr
        # Six cases were answered at once by the runner, yet no host ever held more than its one slot.
        assert a.max_in_flight <= 1 and b.max_in_flight <= 1
        assert a.max_in_flight + b.max_in_flight >= 1
    reports = tmp_path / "reports" / "mini"
    want, got = _by_key(reports / "local"), _by_key(reports / "ray")
    assert len(want) == len(CASES) * 3
    assert got == want
    assert _scores(reports / "ray") == _scores(reports / "local")  # every question embedded as it would be alone
    assert sum(1 for row in got.values() if row["generations"]) == 6
    manifest = json.loads((reports / "ray" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "--ray" in manifest["resume_with"]


def _big_suite(path: Path, copies: int) -> int:
    """A retrieval-only suite of ``copies`` × the mini cases (bm25 and dense), so a run lasts long enough to be hit."""
    cases = [case(case_id, id=f"{case_id}-{n}", generate=False) for n in range(copies) for case_id in CASES]
    path.write_text(yaml.safe_dump(suite(generation=None, cases=cases, variants=variants("bm25", "dense")),
                                   sort_keys=False))
    return len(cases) * 2


def _start_run(tmp_path: Path, suite_path: Path, run_id: str, chroma: ChromaServer,
               *extra: str) -> subprocess.Popen[str]:
    env = {**ray_env(), "HARNESS_CHROMA_URL": chroma.url, "ANTHROPIC_API_KEY": ""}
    return subprocess.Popen([sys.executable, "-m", "harness.cli.main", "run", str(suite_path), "--run-id", run_id,
                             "--quiet", *extra], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_records(run_dir: Path, process: subprocess.Popen[str], at_least: int = 1) -> int:
    """Block until the run has logged ``at_least`` records (the event itself, not a sleep), or fail if it died."""
    log = run_dir / "cases.jsonl"
    deadline = time.monotonic() + 300
    while True:
        lines = log.read_text().count("\n") if log.exists() else 0
        if lines >= at_least:
            return lines
        if process.poll() is not None:
            pytest.fail(f"the run ended before logging {at_least} records: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run logged no record within 300 s")
        time.sleep(0.02)


def _retrieval_workers(cluster: RayCluster) -> list[int]:
    pids = [pid for node in cluster.nodes for pid in session_members(node.pid)]
    found = []
    for pid in pids:
        try:
            if "RetrievalWorker" in Path(f"/proc/{pid}/cmdline").read_text():
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster: RayCluster, chroma: ChromaServer,
                                                              tmp_path: Path) -> None:
    suite_path = tmp_path / "big.yaml"
    total = _big_suite(suite_path, copies=15)
    ingest = harness_cli("ingest", str(suite_path), env={"HARNESS_CHROMA_URL": chroma.url}, cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    run = _start_run(tmp_path, suite_path, "killed-worker", chroma, "--ray", ray_cluster.address,
                     "--ray-case-batch", "1")
    run_dir = tmp_path / "reports" / "mini" / "killed-worker"
    logged = _wait_for_records(run_dir, run)
    workers = _retrieval_workers(ray_cluster)
    assert workers, "no retrieval actor process found on the cluster"
    assert run.poll() is None, "the run finished before a worker could be killed; make the suite bigger"
    os.kill(workers[0], signal.SIGKILL)
    assert logged < total, "the run finished before a worker could be killed; make the suite bigger"
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    keys = [(row["case_id"], row["variant"]) for row in _records(run_dir)]
    assert len(keys) == len(set(keys)) == total


def test_a_driver_killed_mid_run_resumes_locally(ray_cluster: RayCluster, chroma: ChromaServer,
                                                 tmp_path: Path) -> None:
    suite_path = tmp_path / "big.yaml"
    total = _big_suite(suite_path, copies=15)
    run = _start_run(tmp_path, suite_path, "killed-driver", chroma, "--ray", ray_cluster.address,
                     "--ray-case-batch", "1")
    run_dir = tmp_path / "reports" / "mini" / "killed-driver"
    logged = _wait_for_records(run_dir, run)
    assert run.poll() is None
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate()
    assert logged < total
    resumed = harness_cli("run", str(suite_path), "--resume", "killed-driver", "--quiet",
                          env={"HARNESS_CHROMA_URL": chroma.url, "ANTHROPIC_API_KEY": ""}, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    keys = [(row["case_id"], row["variant"]) for row in _records(run_dir)]
    assert len(keys) == len(set(keys)) == total
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
