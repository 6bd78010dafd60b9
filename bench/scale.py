"""Scale-out figures for ``--ray``: ingest chunks/s and run pairs/s, locally and on Ray with one and two nodes.

Everything runs on this machine: a ``chroma run`` server on loopback and a Ray cluster of one-CPU nodes started with
``ray start`` (head on 127.0.0.2, the second node on 127.0.0.3). On a two-core machine two nodes can at best double
one node's rate; the point is the shape, and the fixed cost Ray adds to every run.

Prints:
  - ingest: chunks/s of a cold ingest (every chunk embedded and written), locally (one process, warm model) and on Ray;
  - run: (case, variant) retrievals/s of a retrieval-only run of suites/retrieval.yaml, locally and on Ray;
  - Ray's fixed overhead: joining the cluster, and a one-case run on Ray minus the same run locally (actor start-up,
    a model load per actor, scheduling), so a user knows below what size ``--ray`` does not pay;
  - Chroma's write rate (upserts of ready vectors) and the driver's log append rate, the two serial parts.

Run: ``python bench/scale.py [--cases N] [--nodes 1,2] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the loopback cluster and Chroma server helpers the Ray tests use

from _ray import RayCluster, start_chroma, start_cluster  # noqa: E402

from harness.retrieval import ray_cluster  # noqa: E402
from harness.retrieval.chroma_store import ChromaStore, IndexKey  # noqa: E402
from harness.retrieval.embedders import get_embedder  # noqa: E402
from harness.retrieval.ray_ingest import ray_ingest  # noqa: E402
from harness.run.runner import run_suite  # noqa: E402
from harness.run.session import RayOptions, RunOptions, load_suite_and_corpus, prepare  # noqa: E402
from harness.store.records import CaseRecord  # noqa: E402

SUITE = ROOT / "suites" / "retrieval.yaml"
_RUNS = 0


def _suite_with(cases: int, work: Path) -> Path:
    """suites/retrieval.yaml cut to its first ``cases`` cases, with the corpus path made absolute."""
    import yaml

    data = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    data["cases"] = data["cases"][:cases]
    data["corpus"] = str(ROOT / "corpora" / data.get("corpus", "restoration"))
    data["name"] = f"scale{cases}"
    path = work / f"scale-{cases}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def ingest_rate(chroma_url: str, address: Any | None, batch_size: int = 32) -> tuple[float, int, float]:
    """(chunks/s, chunks, seconds) of a cold ingest of the restoration corpus into a fresh collection."""
    suite, corpus = load_suite_and_corpus(SUITE)
    model = get_embedder(suite.embedder)
    store = ChromaStore(url=chroma_url)
    key = IndexKey(corpus.name, model.name, suite.chunking.label)
    if key.collection_name in store.collection_names():
        store.drop(key)
    index = store.open(key, model)
    if address is None:
        from harness.corpus.chunking import chunk_corpus

        model.embed(["warm-up"])  # the model load is not the ingest rate
        began = time.perf_counter()
        report = index.sync(chunk_corpus(corpus, suite.chunking))
    else:
        began = time.perf_counter()
        report = ray_ingest(corpus, suite.chunking, suite.embedder, index, address, batch_size=batch_size)
    seconds = time.perf_counter() - began
    return report.total / seconds, report.total, seconds


def run_rate(suite_path: Path, work: Path, chroma_url: str, ray: RayOptions | None) -> tuple[float, int, float]:
    """(pairs/s, pairs, seconds) of the run phase (indexes already synced: not part of the figure)."""
    global _RUNS
    _RUNS += 1
    options = RunOptions(suite_path=suite_path, reports_dir=work / "reports", chroma_url=chroma_url,
                         store_dir=work / "index", cache_dir=None, ray=ray, run_id=f"bench-{_RUNS}")
    prepared = prepare(options)
    try:
        began = time.perf_counter()
        outcome = asyncio.run(run_suite(prepared.parts, prepared.store))
        seconds = time.perf_counter() - began
    finally:
        prepared.store.release()
    return outcome.written / seconds, outcome.written, seconds


def chroma_write_rate(chroma_url: str, records: int = 4000, batch: int = 256) -> float:
    """Upserts/s of ready 384-d vectors into a fresh collection on the server (one writer)."""
    store = ChromaStore(url=chroma_url)
    name = "rh-bench-writes"
    if name in store.collection_names():
        store.client.delete_collection(name)
    collection = store.client.create_collection(name, embedding_function=None)
    vectors = np.random.default_rng(0).standard_normal((records, 384)).astype(np.float32)
    began = time.perf_counter()
    for start in range(0, records, batch):
        ids = [f"r{i}" for i in range(start, min(start + batch, records))]
        collection.upsert(ids=ids, embeddings=vectors[start:start + len(ids)], documents=["x" * 600] * len(ids),
                          metadatas=[{"hash": i} for i in ids])
    rate = records / (time.perf_counter() - began)
    store.client.delete_collection(name)
    return rate


def log_append_rate(work: Path, records: int = 2000) -> float:
    """Records/s the driver appends to a run log (one JSON line each, flushed), with a realistic record."""
    from harness.store.store import RunStore

    sample = next(iter(_one_record(work)))
    store = RunStore.create(work / "append-bench", _manifest())
    try:
        began = time.perf_counter()
        for n in range(records):
            store.append(sample.model_copy(update={"case_id": f"c{n}"}))
        return records / (time.perf_counter() - began)
    finally:
        store.release()


def _one_record(work: Path) -> list[CaseRecord]:
    from harness.store.store import RunStore

    runs = sorted((work / "reports").glob("*/*/cases.jsonl"))
    return list(RunStore.open(runs[0].parent).records())[:1]


def _manifest() -> Any:
    from harness.store.records import Manifest

    return Manifest(run_id="append-bench", pid=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=170, help="cases of suites/retrieval.yaml to run (× 3 variants)")
    parser.add_argument("--nodes", default="1,2", help="Ray cluster sizes to measure")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="chunks per Ray batch: small enough that two actors share a 700-chunk corpus evenly")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    node_counts = [int(n) for n in args.nodes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="rh-scale-"))
    chroma = start_chroma(_mkdir(work / "chroma") / "data")
    cluster: RayCluster | None = None
    out: dict[str, Any] = {"cases": args.cases}
    try:
        big, one = _suite_with(args.cases, work), _suite_with(1, work)
        rate, chunks, seconds = ingest_rate(chroma.url, None)
        out["ingest_local"] = {"chunks_per_s": rate, "chunks": chunks, "seconds": seconds}
        _say(f"ingest local: {chunks} chunks in {seconds:.1f} s = {rate:.1f} chunks/s")
        rate, pairs, seconds = run_rate(big, work, chroma.url, None)
        out["run_local"] = {"pairs_per_s": rate, "pairs": pairs, "seconds": seconds}
        _say(f"run local: {pairs} retrievals in {seconds:.1f} s = {rate:.1f}/s")
        _, _, local_one = run_rate(one, work, chroma.url, None)
        out["chroma_writes_per_s"] = chroma_write_rate(chroma.url)
        _say(f"Chroma server write rate: {out['chroma_writes_per_s']:.0f} records/s (one writer, batches of 256)")
        out["log_appends_per_s"] = log_append_rate(work)
        _say(f"driver log append rate: {out['log_appends_per_s']:.0f} records/s")
        for nodes in node_counts:
            cluster = _grow(cluster, nodes)
            address = ray_cluster.parse_address(cluster.address)
            began = time.perf_counter()
            ray_cluster.connect(address)
            joined = time.perf_counter() - began
            rate, chunks, seconds = ingest_rate(chroma.url, address, args.batch_size)
            out[f"ingest_ray_{nodes}"] = {"chunks_per_s": rate, "chunks": chunks, "seconds": seconds}
            _say(f"ingest on Ray, {nodes} node(s): {chunks} chunks in {seconds:.1f} s = {rate:.1f} chunks/s")
            options = RayOptions(address=cluster.address, case_batch=8)
            rate, pairs, seconds = run_rate(big, work, chroma.url, options)
            out[f"run_ray_{nodes}"] = {"pairs_per_s": rate, "pairs": pairs, "seconds": seconds}
            _say(f"run on Ray, {nodes} node(s): {pairs} retrievals in {seconds:.1f} s = {rate:.1f}/s")
            _, _, ray_one = run_rate(one, work, chroma.url, options)
            fixed = ray_one - local_one
            steady = pairs / max(seconds - fixed, 1e-9)
            out[f"overhead_ray_{nodes}"] = {"join_s": joined, "one_case_run_s": ray_one,
                                            "one_case_run_local_s": local_one, "fixed_s": fixed}
            out[f"run_ray_{nodes}"]["steady_pairs_per_s"] = steady
            _say(f"  past the fixed overhead: {steady:.1f} retrievals/s")
            _say(f"Ray fixed overhead, {nodes} node(s): joining {joined:.1f} s; a one-case run {ray_one:.1f} s on "
                 f"Ray vs {local_one:.2f} s locally: {ray_one - local_one:.1f} s per run")
            ray_cluster.shutdown()
    finally:
        ray_cluster.shutdown()
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.temp_dir.parent, ignore_errors=True)
        chroma.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))


def _grow(cluster: RayCluster | None, nodes: int) -> RayCluster:
    if cluster is None:
        return start_cluster(nodes=nodes)
    while len(cluster.nodes) < nodes:
        cluster.start_node(head=False)
    return cluster


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
