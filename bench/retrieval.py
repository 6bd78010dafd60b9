"""Retrieval-phase throughput: this tree against a baseline commit, on a synthetic retrieval-only suite.

Target: on a 2,000-case x 3-variant suite (dense, bm25, hybrid) over the restoration corpus, the retrieval phase runs
at least 4x faster than the baseline (the last commit before questions were embedded once, in batches), and writes
the same records: the same document rankings, chunks, fetch depths and metrics for every case and variant (scores
may differ in the last bits: the baseline embedded a question in all of torch's threads, this tree in one, and a
short text's sums split differently over threads; the largest difference is printed).

The retrieval phase is everything a run does after its indexes are built and the model is loaded: embedding the
questions, ANN fidelity (HNSW against exact search), and retrieving and scoring every case x variant. Both sides run
(ours with ``backend: torch``, as the baseline ran, and once more with the default backend, for information)
in fresh processes over the same prebuilt index, alternately (baseline, ours, baseline, ...) so load from other
processes on a shared machine hits both alike; each prints its phase times and its peak RSS.

Questions are sentences drawn from the corpus's chunks (their first 14 words, and the last 14 of a long one), each
graded relevant to its document.

Run: ``python bench/retrieval.py [--cases 2000] [--baseline REF] [--repeats 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "8e8521e"  # the last commit that embedded every question per search, one at a time
TARGET_SPEEDUP = 4.0
METRICS = ["recall@10", "precision@5", "hit@5", "mrr", "mrr@10", "ndcg@10", "map"]

# Runs in a fresh process with PYTHONPATH set to the tree under test; uses only what both trees have.
DRIVER = r"""
import json, resource, sys, time
from pathlib import Path
from harness.run.session import load_suite_and_corpus
from harness.retrieval.build import build_retrievers
from harness.retrieval.embedders import get_embedder
from harness.run.fidelity import suite_ann_fidelity
from harness.run.runner import RunParts, run_suite
try:
    from harness.store.records import Manifest
    from harness.store.store import RunStore
except ImportError:  # the baseline tree, before the store had a package of its own
    from harness.run.records import Manifest
    from harness.run.store import RunStore
import asyncio

suite_path, store_dir, out_dir = map(Path, sys.argv[1:4])
suite, corpus = load_suite_and_corpus(suite_path)
setup = build_retrievers(suite, corpus, store_dir.resolve())      # the index is built already: a no-op sync
get_embedder(suite.embedder).embed(["warm the model"])            # model load is not part of the phase
began = time.perf_counter()
embed_queries = getattr(setup.indexes, "embed_queries", None)
if embed_queries is not None:
    embed_queries([case.question for case in suite.cases])
embedded = time.perf_counter()
fidelity = suite_ann_fidelity(suite, setup)
checked = time.perf_counter()
store = RunStore.create(out_dir, Manifest(run_id=out_dir.name, pid=0))
asyncio.run(run_suite(RunParts(suite=suite, retrievers=setup.retrievers), store))
done = time.perf_counter()
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the phase's, before the records are counted
print(json.dumps({"embed_s": embedded - began, "fidelity_s": checked - embedded, "retrieve_s": done - checked,
                  "phase_s": done - began, "records": sum(1 for _ in store.records()), "peak_rss_mb": peak_rss_mb,
                  "fidelity": fidelity}))
"""


def synthetic_suite(corpus_dir: Path, n_cases: int, seed: int = 0) -> dict[str, Any]:
    """A retrieval-only suite of ``n_cases`` distinct questions cut from the corpus's sentences."""
    from harness.config.suite import ChunkingConfig
    from harness.corpus.chunking import chunk_corpus
    from harness.corpus.documents import load_corpus

    chunking = ChunkingConfig(max_chars=1200, overlap=200)
    candidates: dict[str, str] = {}
    for chunk in chunk_corpus(load_corpus(corpus_dir), chunking):
        body = chunk.text.split("\n\n", 1)[-1]
        for sentence in re.split(r"(?<=[.?!])\s+", body):
            words = re.sub(r"[|#*`>_]+", " ", sentence).split()
            if len(words) >= 6:
                candidates.setdefault(" ".join(words[:14]), chunk.doc_id)
            if len(words) >= 20:  # a long sentence gives its tail too: the corpus has fewer than 2,000 sentences
                candidates.setdefault(" ".join(words[-14:]), chunk.doc_id)
    questions = sorted(candidates)
    random.Random(seed).shuffle(questions)
    if len(questions) < n_cases:
        raise SystemExit(f"the corpus yields only {len(questions)} distinct questions; ask for fewer cases")
    cases = [{"id": f"syn-{i:05d}", "question": q, "relevant": {candidates[q]: 3}, "category": "synthetic"}
             for i, q in enumerate(questions[:n_cases])]
    return {"name": "bench-retrieval", "description": "synthetic retrieval-only suite", "corpus": corpus_dir.name,
            "chunking": {"max_chars": 1200, "overlap": 200},
            "embedder": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}, "k": 10, "metrics": METRICS,
            "variants": [{"name": "dense", "retriever": "dense"}, {"name": "bm25", "retriever": "bm25"},
                         {"name": "hybrid", "retriever": "hybrid"}], "cases": cases}


def export_tree(ref: str, target: Path) -> Path:
    """The ``harness`` package as it was at ``ref``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "harness"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def run_side(tree: Path, suite_path: Path, store_dir: Path, out_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", DRIVER, str(suite_path), str(store_dir), str(out_dir)],
                            capture_output=True, text=True, env=env, cwd=suite_path.parent.parent, check=False)
    if result.returncode != 0:
        raise SystemExit(f"retrieval phase failed under {tree}:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def read_records(run_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for line in (run_dir / "cases.jsonl").read_text().splitlines():
        record = json.loads(line)
        out[(record["case_id"], record["variant"])] = record["retrieval"]
    return out


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Where two retrieval records part: the first differing rank (with both scores) or field."""
    for rank, (x, y) in enumerate(zip(a["ranked"], b["ranked"], strict=False), start=1):
        if x[0] != y[0]:
            return f"rank {rank}: baseline {x}, ours {y}"
    for field in ("ranked", "chunks", "chunks_fetched", "exhausted", "metrics"):
        if a[field] != b[field]:
            return f"{field}: baseline {a[field]!r:.300}, ours {b[field]!r:.300}"
    return "same"


def compare(before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]]
            ) -> tuple[int, float, list[str]]:
    """(records that differ in ranking, chunks, depth or metrics; largest score difference; a few examples)."""
    differing, worst, examples = 0, 0.0, []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            differing += 1
            examples.append(f"{key}: only in {'ours' if a is None else 'baseline'}")
            continue
        same = ([d for d, _ in a["ranked"]] == [d for d, _ in b["ranked"]] and a["chunks"] == b["chunks"]
                and a["chunks_fetched"] == b["chunks_fetched"] and a["exhausted"] == b["exhausted"]
                and a["metrics"] == b["metrics"])
        if same:
            worst = max([worst, *(abs(x - y) for (_, x), (_, y) in zip(a["ranked"], b["ranked"], strict=True))])
        else:
            differing += 1
            if len(examples) < 5:
                examples.append(f"{key}: {first_difference(a, b)}")
    return differing, worst, examples


OURS_DEFAULT = "ours-default"


def _with_backend(suite: dict[str, Any], backend: str | None) -> dict[str, Any]:
    embedder = {key: value for key, value in suite["embedder"].items() if key != "backend"}
    return {**suite, "embedder": {**embedder, "backend": backend} if backend else embedder}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--baseline", default=BASELINE, help=f"commit to compare against (default {BASELINE})")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per side; the best is kept")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    try:
        corpus_dir = scratch / "corpora" / "restoration"
        shutil.copytree(ROOT / "corpora" / "restoration", corpus_dir)
        (scratch / "suites").mkdir()
        suite = synthetic_suite(corpus_dir, args.cases)
        # The baseline knows no embedder backends and ran torch; ours runs torch too for a like-for-like comparison
        # of records, and the default backend as well, for what a suite that names none gets now.
        suites = {"baseline": suite, "ours": _with_backend(suite, "torch"), OURS_DEFAULT: _with_backend(suite, None)}
        # A snapshot of this tree, so editing it while the bench runs changes nothing.
        ours = scratch / "ours"
        shutil.copytree(ROOT / "harness", ours / "harness", ignore=shutil.ignore_patterns("__pycache__"))
        trees = {"baseline": export_tree(args.baseline, scratch / "baseline"), "ours": ours, OURS_DEFAULT: ours}
        # One store for all: the torch embedder keeps its index key, so baseline and ours read the same collection.
        store = scratch / "store"
        print(f"suite: {args.cases} synthetic cases x 3 variants (dense, bm25, hybrid) over corpora/restoration; "
              f"baseline {args.baseline}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        # Build the indexes first (and warm each side once), outside the timed phase. Ours builds the shared torch
        # collection, so it gets today's HNSW settings (a graph every process reads alike) for both sides.
        paths: dict[str, Path] = {}
        for name, body in sorted(suites.items(), key=lambda item: item[0] == "baseline"):
            paths[name] = scratch / "suites" / f"{name}.yaml"
            paths[name].write_text(yaml.safe_dump(body, sort_keys=False))
            warm = scratch / "suites" / f"warm-{name}.yaml"
            warm.write_text(yaml.safe_dump({**body, "cases": body["cases"][:3]}, sort_keys=False))
            run_side(trees[name], warm, store, scratch / f"warm-{name}")
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in suites}
        for rep in range(args.repeats):
            for name in suites:
                results[name].append(run_side(trees[name], paths[name], store, scratch / f"run-{name}-{rep}"))
        # The control: the baseline once more, last. Records that differ between its two runs come from the index,
        # not from either tree (with Chroma's default sync_threshold, each process rebuilt part of the HNSW graph).
        run_side(trees["baseline"], paths["baseline"], store, scratch / "run-baseline-again")
        best = {name: min(runs, key=lambda r: r["phase_s"]) for name, runs in results.items()}
        retrievals = args.cases * 3
        print(f"{'':14s}{'embed':>9s}{'fidelity':>10s}{'retrieve':>10s}{'phase':>9s}{'retr/s':>9s}{'peak RSS':>10s}")
        for name, row in best.items():
            print(f"{name:14s}{row['embed_s']:8.1f}s{row['fidelity_s']:9.1f}s{row['retrieve_s']:9.1f}s"
                  f"{row['phase_s']:8.1f}s{retrievals / row['phase_s']:9.1f}{row['peak_rss_mb']:8.0f}MB")
        speedup = best["baseline"]["phase_s"] / best["ours"]["phase_s"]
        differing, worst, examples = compare(read_records(scratch / "run-baseline-0"),
                                             read_records(scratch / "run-ours-0"))
        print(f"speed-up of the retrieval phase: {speedup:.2f}x (target >= {TARGET_SPEEDUP:.0f}x); "
              f"records: {retrievals} each side, {differing} differ in ranking/chunks/metrics; "
              f"largest score difference {worst:.1e}")
        for example in examples:
            print(f"  differs: {example}")
        control, _, control_examples = compare(read_records(scratch / "run-baseline-0"),
                                               read_records(scratch / "run-baseline-again"))
        print(f"control: the baseline's second run differs from its first in {control} records")
        for example in control_examples[:2]:
            print(f"  differs: {example}")
        print(f"with the default backend ({OURS_DEFAULT}, other vectors, so other records): "
              f"{best['baseline']['phase_s'] / best[OURS_DEFAULT]['phase_s']:.2f}x the baseline's phase")
        print(f"ANN fidelity: baseline {best['baseline']['fidelity']}, ours {best['ours']['fidelity']}")
        ok = speedup >= TARGET_SPEEDUP and differing == 0
        print(f"{'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
