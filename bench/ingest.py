"""Embedder backends side by side: ingest speed, query latency and peak RSS, beside the quality guard.

For each backend (``torch``, ``onnx``, ``onnx-int8``), a fresh process:
  * ingests the whole restoration corpus into an empty Chroma store (cold cache: every chunk is embedded), and, for
    torch, times plain ``SentenceTransformer.encode`` on the same texts;
  * embeds 100 suite questions one at a time (the query path) for the p50 latency;
  * retrieves every case of suites/retrieval.yaml and suites/nightly.yaml through the dense and hybrid variants;
  * prints its peak RSS.
Processes alternate by repeat (torch, onnx, onnx-int8, torch, ...) so load from other processes on a shared machine
hits every backend alike; the best repeat is kept. ONNX exports are made (or found) before timing: that is the
one-off "first use" cost, printed separately.

Targets, for a backend to become the default: ingest chunks/s >= 2.0x torch's ``encode``, query p50 >= 2x faster,
and the quality guard: cosine to the torch vectors over the corpus chunks with mean >= 0.995 and min >= 0.98;
nDCG@10 and recall@10 of dense and hybrid on both suites within 0.01 of torch, with no significant paired drop
(sign-flip test, p < 0.05, and a 95 % paired bootstrap interval of the difference).

Run: ``python bench/ingest.py [--backends torch,onnx,onnx-int8] [--repeats 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("suites/retrieval.yaml", "suites/nightly.yaml")
GUARD_VARIANTS = ("dense", "hybrid")
GUARD_METRICS = ("ndcg@10", "recall@10")
COSINE_MEAN, COSINE_MIN, METRIC_TOLERANCE = 0.995, 0.98, 0.01
INGEST_TARGET, QUERY_TARGET = 2.0, 2.0
QUERIES = 100


# ----------------------------------------------------------------------------------------------- one backend

def measure_backend(backend: str, scratch: Path) -> dict[str, Any]:
    """Runs in its own process: everything this backend is timed and judged on."""
    from harness.config.suite import ChunkingConfig, EmbedderConfig
    from harness.corpus.chunking import chunk_corpus
    from harness.corpus.documents import load_corpus
    from harness.metrics.retrieval import evaluate
    from harness.retrieval.build import build_retrievers, ingest, open_store
    from harness.retrieval.embedders import get_embedder
    from harness.run.doc_ranking import rank_documents_many
    from harness.run.session import load_suite_and_corpus

    out: dict[str, Any] = {"backend": backend}
    corpus = load_corpus(ROOT / "corpora" / "restoration")
    chunking = ChunkingConfig()
    config = EmbedderConfig(backend=backend)
    texts = [chunk.text for chunk in chunk_corpus(corpus, chunking)]
    began = time.perf_counter()
    embedder = get_embedder(config)
    embedder.embed(["warm up"])
    out["load_s"] = time.perf_counter() - began
    out["embedder"] = embedder.name
    if backend == "torch":
        model = embedder.encoder  # type: ignore[attr-defined]
        began = time.perf_counter()
        model.encode(texts, batch_size=config.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=False)
        out["encode_chunks_per_s"] = len(texts) / (time.perf_counter() - began)
    store_dir = Path(tempfile.mkdtemp(prefix=f"store-{backend}-", dir=scratch))  # empty: every chunk is embedded
    began = time.perf_counter()
    report = ingest(corpus, chunking, embedder, open_store(store_dir))
    out["ingest_s"] = time.perf_counter() - began
    out["chunks"] = report.total
    out["ingest_chunks_per_s"] = report.total / out["ingest_s"]
    if report.embedded != report.total:
        raise SystemExit(f"{backend}: the ingest embedded {report.embedded} of {report.total} chunks; not a cold run")
    out["rss_after_ingest_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    again = ingest(load_corpus(ROOT / "corpora" / "restoration"), chunking, embedder, open_store(store_dir))
    out["reingest_s"], out["reingest_embedded"] = time.perf_counter() - began, again.embedded

    suites = [load_suite_and_corpus(ROOT / path) for path in SUITES]
    questions = list(dict.fromkeys(case.question for suite, _ in suites for case in suite.cases))[:QUERIES]
    latencies = []
    for question in questions:
        began = time.perf_counter()
        embedder.embed([question])
        latencies.append(time.perf_counter() - began)
    out["query_p50_ms"] = statistics.median(latencies) * 1000

    from harness.retrieval.chroma_store import IndexKey

    index = open_store(store_dir).open(IndexKey(corpus.name, embedder.name, chunking.label), embedder)
    ids, _, matrix = index.embeddings()
    np.save(scratch / f"vectors-{backend}.npy", matrix)
    (scratch / f"ids-{backend}.json").write_text(json.dumps(ids))

    quality: dict[str, Any] = {}
    for path, (suite, suite_corpus) in zip(SUITES, suites, strict=True):
        suite = suite.model_copy(update={"embedder": config, "variants": [
            v for v in suite.variants if v.name in GUARD_VARIANTS]})
        setup = build_retrievers(suite, suite_corpus, store_dir)
        measured = [case for case in suite.cases if any(g > 0 for g in case.relevant.values())]
        for variant in suite.variants:
            rankings = rank_documents_many(setup.retrievers[variant.name], [c.question for c in measured], suite.k)
            frame = evaluate({c.id: c.relevant for c in measured},
                             {c.id: dict(r.ranked) for c, r in zip(measured, rankings, strict=True)},
                             list(GUARD_METRICS))
            quality[f"{Path(path).stem}/{variant.name}"] = {m: frame[m].to_dict() for m in GUARD_METRICS}
    out["quality"] = quality
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def export_first(backend: str) -> dict[str, Any]:
    """Make (or find) the ONNX export: the one-off cost of a backend's first use."""
    from harness.config.suite import EmbedderConfig
    from harness.retrieval.embedders import get_embedder

    began = time.perf_counter()
    name = get_embedder(EmbedderConfig(backend=backend)).name
    return {"backend": backend, "embedder": name, "export_s": time.perf_counter() - began}


def child(mode: str, backend: str, scratch: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, f"--{mode}", backend, "--scratch", str(scratch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{backend} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# ----------------------------------------------------------------------------------------------------- guard

def cosine_guard(scratch: Path, backend: str) -> tuple[float, float]:
    ref_ids = json.loads((scratch / "ids-torch.json").read_text())
    ids = json.loads((scratch / f"ids-{backend}.json").read_text())
    if ids != ref_ids:
        raise SystemExit(f"{backend} stored other chunks than torch")
    cosine = np.sum(np.load(scratch / "vectors-torch.npy") * np.load(scratch / f"vectors-{backend}.npy"), axis=1)
    return float(cosine.mean()), float(cosine.min())


def quality_rows(reference: dict[str, Any], candidate: dict[str, Any]) -> list[dict[str, Any]]:
    from harness.metrics.stats.tests import paired_bootstrap_ci, sign_flip_test

    rows = []
    for key, metrics in reference.items():
        for metric, by_case in metrics.items():
            cases = sorted(by_case)
            a = [by_case[c] for c in cases]
            b = [candidate[key][metric][c] for c in cases]
            ci = paired_bootstrap_ci(a, b, n_resamples=5000)
            test = sign_flip_test(a, b, n_resamples=5000)
            diff = float(np.mean(b) - np.mean(a))
            drop = test.p_value is not None and test.p_value < 0.05 and diff < 0
            rows.append({"where": key, "metric": metric, "torch": float(np.mean(a)), "other": float(np.mean(b)),
                         "diff": diff, "low": ci.low, "high": ci.high, "p": test.p_value, "n": len(cases),
                         "ok": abs(diff) <= METRIC_TOLERANCE and not drop})
    return rows


# ---------------------------------------------------------------------------------------------------- report

def compare_backends(backends: list[str], repeats: int) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; corpus corpora/restoration; "
              f"each backend in its own process, alternating, best of {repeats}")
        for backend in backends:
            if backend != "torch":
                made = child("export", backend, scratch)
                print(f"first use of {backend}: export found or made in {made['export_s']:.1f} s ({made['embedder']})")
        runs: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        for _ in range(repeats):
            for backend in backends:
                runs[backend].append(child("measure", backend, scratch))
        best = {b: max(rs, key=lambda r: r["ingest_chunks_per_s"]) for b, rs in runs.items()}
        torch_row = best["torch"]
        encode = torch_row["encode_chunks_per_s"]
        print(f"\n{'backend':10s}{'ingest':>10s}{'x encode':>9s}{'x ingest':>9s}{'query p50':>11s}{'x torch':>8s}"
              f"{'load':>7s}{'peak RSS':>10s}{'cos mean':>9s}{'cos min':>8s}")
        print(f"{'':10s}{'chunks/s':>10s}")
        verdicts: dict[str, bool] = {}
        for backend, row in best.items():
            mean, low = (1.0, 1.0) if backend == "torch" else cosine_guard(scratch, backend)
            x_encode = row["ingest_chunks_per_s"] / encode
            x_ingest = row["ingest_chunks_per_s"] / torch_row["ingest_chunks_per_s"]
            x_query = torch_row["query_p50_ms"] / row["query_p50_ms"]
            print(f"{backend:10s}{row['ingest_chunks_per_s']:10.1f}{x_encode:9.2f}{x_ingest:9.2f}"
                  f"{row['query_p50_ms']:9.1f}ms{x_query:8.2f}{row['load_s']:6.1f}s{row['peak_rss_mb']:8.0f}MB"
                  f"{mean:9.4f}{low:8.4f}")
            if backend == "torch":
                print(f"{'':10s}(torch SentenceTransformer.encode alone: {encode:.1f} chunks/s; "
                      f"{torch_row['chunks']} chunks)")
            print(f"{'':10s}re-ingest unchanged: {row['reingest_s']:.2f} s, {row['reingest_embedded']} embeddings")
            if backend == "torch":
                continue
            rows = quality_rows(torch_row["quality"], row["quality"])
            cosine_ok = mean >= COSINE_MEAN and low >= COSINE_MIN
            quality_ok = all(r["ok"] for r in rows)
            speed_ok = x_encode >= INGEST_TARGET and x_query >= QUERY_TARGET
            verdicts[backend] = cosine_ok and quality_ok and speed_ok
            for r in rows:
                p = "n/a" if r["p"] is None else f"{r['p']:.3f}"
                print(f"{'':10s}{r['where']:18s}{r['metric']:10s} torch {r['torch']:.4f}  {backend} {r['other']:.4f}  "
                      f"diff {r['diff']:+.4f} [95% {r['low']:+.4f}, {r['high']:+.4f}] sign-flip p={p} n={r['n']}"
                      f"  {'ok' if r['ok'] else 'FAIL'}")
            print(f"{'':10s}guard: cosine {'PASS' if cosine_ok else 'FAIL'} (mean >= {COSINE_MEAN}, min >= "
                  f"{COSINE_MIN}); suites {'PASS' if quality_ok else 'FAIL'} (|diff| <= {METRIC_TOLERANCE}, no "
                  f"significant drop); speed {'PASS' if speed_ok else 'FAIL'} (ingest >= {INGEST_TARGET}x encode, "
                  f"query p50 >= {QUERY_TARGET}x)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        for backend, ok in verdicts.items():
            print(f"{'PASS' if ok else 'FAIL'} {backend}: guard and targets")
        return 0 if verdicts and all(verdicts.values()) else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure or args.export:
        assert args.scratch is not None
        result = measure_backend(args.measure, args.scratch) if args.measure else export_first(args.export)
        print(json.dumps(result))
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "torch" not in backends:
        backends.insert(0, "torch")
    return compare_backends(backends, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
