"""``harness ingest --ray`` on a real two-node Ray cluster on loopback, writing into a real ``chroma run`` server.

The oracle is the single-process ingest of the same corpus into an embedded Chroma store: the same ids, texts and
metadata, embeddings within 1e-5, and the same incremental behaviour (nothing re-embedded on a second run, only a
changed document's changed chunks after an edit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from _ray import (
    HEAD_IP,
    ChromaServer,
    RayCluster,
    free_port,
    harness_cli,
)
from _suites import CASES, case, suite

from harness.config.suite import load_suite
from harness.corpus.documents import load_corpus
from harness.retrieval.build import ingest
from harness.retrieval.chroma_store import ChromaStore, IndexKey
from harness.retrieval.embedders import get_embedder

pytestmark = pytest.mark.ray

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
EDITED = "code-r905-1-2-port-ellis"


@pytest.fixture
def cluster(ray_cluster: RayCluster) -> RayCluster:
    return ray_cluster


@pytest.fixture
def chroma(ray_chroma: ChromaServer) -> ChromaServer:
    return ray_chroma


def _write_suite(path: Path, corpus: Path) -> Path:
    data = suite(corpus=str(corpus), generation=None, cases=[case(c, generate=False) for c in CASES])
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _records(store: ChromaStore, key: IndexKey) -> dict[str, tuple[str, dict, np.ndarray]]:
    collection = store.client.get_collection(key.collection_name)
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    return {record_id: (text, meta, np.asarray(vector, dtype=np.float32))
            for record_id, text, meta, vector in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"],
                                                     strict=True)}


def _assert_same_collection(local: ChromaStore, server: ChromaStore, key: IndexKey) -> None:
    want, got = _records(local, key), _records(server, key)
    assert sorted(got) == sorted(want)
    for record_id, (text, meta, vector) in want.items():
        assert got[record_id][0] == text
        assert got[record_id][1] == meta
        np.testing.assert_allclose(got[record_id][2], vector, atol=1e-5, rtol=0)


def _ingest_json(suite_path: Path, address: str, chroma_url: str, tmp_path: Path) -> dict:
    result = harness_cli("ingest", str(suite_path), "--ray", address, "--ray-batch-size", "4", "--json",
                         "--store", str(tmp_path / "unused-store"), env={"HARNESS_CHROMA_URL": chroma_url})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ray_ingest_equals_local_ingest_and_stays_incremental(cluster: RayCluster, chroma: ChromaServer,
                                                             tmp_path: Path) -> None:
    corpus_dir = tmp_path / "corpus"
    shutil.copytree(FIXTURE, corpus_dir)
    suite_path = _write_suite(tmp_path / "mini.yaml", corpus_dir)
    loaded = load_suite(suite_path)
    local = ChromaStore(tmp_path / "local-chroma")
    model = get_embedder(loaded.embedder)

    first = _ingest_json(suite_path, cluster.address, chroma.url, tmp_path)
    oracle = ingest(load_corpus(corpus_dir), loaded.chunking, model, local)
    [report] = first["collections"]
    assert (report["total"], report["added"], report["embedded"]) == (oracle.total, oracle.total, oracle.embedded)
    key = IndexKey(load_corpus(corpus_dir).name, model.name, loaded.chunking.label)
    server = ChromaStore(url=chroma.url)
    _assert_same_collection(local, server, key)

    again = _ingest_json(suite_path, cluster.address, chroma.url, tmp_path)["collections"][0]
    assert (again["embedded"], again["unchanged"], again["added"], again["updated"]) == (0, oracle.total, 0, 0)

    # Edit one document's last section: only the chunks whose text changed are embedded again, as in one process.
    doc = next(corpus_dir.rglob(f"{EDITED}.md"))
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\n## Added note\n\nA new paragraph about drip edge.\n",
                   encoding="utf-8")
    # ... through Ray Client this time: the pipeline's driver then runs as a task on the cluster.
    edited = _ingest_json(suite_path, cluster.client_address, chroma.url, tmp_path)["collections"][0]
    expected = ingest(load_corpus(corpus_dir), loaded.chunking, model, local)
    assert expected.embedded >= 1
    for name in ("total", "added", "updated", "deleted", "unchanged", "embedded"):
        assert edited[name] == getattr(expected, name), name
    _assert_same_collection(local, server, key)


def test_ray_without_chroma_server_is_an_input_error(tmp_path: Path) -> None:
    suite_path = _write_suite(tmp_path / "mini.yaml", FIXTURE)
    result = harness_cli("ingest", str(suite_path), "--ray", env={"HARNESS_CHROMA_URL": ""})
    assert result.returncode == 2, result.stderr
    assert "HARNESS_CHROMA_URL" in result.stderr and "Traceback" not in result.stderr


def test_ray_address_nobody_answers_is_an_input_error(chroma: ChromaServer, tmp_path: Path) -> None:
    suite_path = _write_suite(tmp_path / "mini.yaml", FIXTURE)
    address = f"{HEAD_IP}:{free_port(HEAD_IP)}"
    result = harness_cli("ingest", str(suite_path), "--ray", address, env={"HARNESS_CHROMA_URL": chroma.url})
    assert result.returncode == 2, result.stderr
    assert f"no Ray cluster answers at {address}" in result.stderr and "ray start --head" in result.stderr
    assert "Traceback" not in result.stderr


def test_ray_missing_package_says_how_to_install(tmp_path: Path) -> None:
    """Without the ray package (hidden from this interpreter), --ray names the extra to install and exits 2."""
    suite_path = _write_suite(tmp_path / "mini.yaml", FIXTURE)
    import subprocess
    import sys

    from _ray import ray_env

    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['harness', *sys.argv[1:]]; "
            "from harness.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "ingest", str(suite_path), "--ray"], capture_output=True,
                            text=True, env={**ray_env(), "HARNESS_CHROMA_URL": "http://127.0.0.1:9"}, check=False,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install '.[ray]'" in result.stderr and "make setup-ray" in result.stderr
