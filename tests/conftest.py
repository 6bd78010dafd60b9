"""Fixtures shared by the tests of the commands that read run stores (gate, compare, history, merge)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _runs import fleet_file, invoke, main_exit
from _suites import write_suite

from harness.fakes import FakeOpenAI, Reply
from harness.retrieval.onnx_export import MODELS_DIR_ENV

# The default embedder backend is exported to ONNX on first use, into the working directory's .harness/models; tests
# run in directories of their own, so without this each would export it again. One export serves the session and
# the CLI processes it starts.
_SESSION_MODELS = None if os.environ.get(MODELS_DIR_ENV) else tempfile.mkdtemp(prefix="harness-test-models-")
if _SESSION_MODELS:
    os.environ[MODELS_DIR_ENV] = _SESSION_MODELS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SESSION_MODELS:
        shutil.rmtree(_SESSION_MODELS, ignore_errors=True)

GATE = {
    "resamples": 2000,
    "thresholds": [
        {"metric": "hit@5", "min": 0.5, "variant": "hybrid"},
        {"metric": "must_include_recall", "tier": "local", "min": 0.5, "category": "jurisdiction"},
    ],
    "non_inferiority": [
        {"metric": "ndcg@5", "variant": "hybrid", "margin": 0.1},
        {"metric": "token_f1", "tier": "local", "margin": 0.2},
    ],
    "failure_rate": [{"tier": "local", "max": 0.25}],
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory with no cloud key and no Chroma server configured (test modules may override it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def mini_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mini_runs")


@pytest.fixture(scope="session")
def mini_runs(mini_workdir: Path) -> Path:
    """Real runs of the fixture suite: two of the same system (``base``, ``cand``), one whose host fails (``broken``).

    Tests copy a run before changing it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(mini_workdir)
        patch.delenv("ANTHROPIC_API_KEY", raising=False)
        patch.delenv("HARNESS_CHROMA_URL", raising=False)
        suite = write_suite(mini_workdir / "mini.yaml", gate=GATE)
        with FakeOpenAI(script=Reply.ok("At least 36 inches inside the exterior wall line.")) as good:
            fleet = fleet_file(mini_workdir / "fleet.yaml", good.url)
            invoke("run", str(suite), "--run-id", "base", "--fleet", str(fleet), "--quiet")
            # a second run of the same system: --fresh, so its calls are made (and timed) rather than replayed
            invoke("run", str(suite), "--run-id", "cand", "--fleet", str(fleet), "--quiet", "--fresh")
        with FakeOpenAI(script=Reply.error(500)) as bad:
            fleet = fleet_file(mini_workdir / "bad.yaml", bad.url)
            # every call fails (and --no-cache, or the answers of the runs above would be replayed): the run is
            # failed (exit 3), and its store is still written
            broken = ["run", str(suite), "--run-id", "broken", "--fleet", str(fleet), "--quiet", "--no-cache"]
            assert main_exit(patch, *broken) == 3
    return mini_workdir / "reports" / "mini"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A real two-node Ray cluster on loopback, shared by the Ray tests; stopped (every process of it) at the end."""
    from _ray import remove_cluster_dir, start_cluster

    cluster = start_cluster(nodes=2)
    try:
        yield cluster
    finally:
        cluster.stop()
        remove_cluster_dir(cluster)


@pytest.fixture(scope="session")
def ray_chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A `chroma run` server on loopback for the Ray tests' workers (each corpus has its own collections)."""
    from _ray import start_chroma

    server = start_chroma(tmp_path_factory.mktemp("ray_chroma") / "data")
    try:
        yield server
    finally:
        server.stop()
