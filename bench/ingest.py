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

Scaling (``--docs N[,N,...]``, one backend, ``onnx-int8`` unless ``--backend`` says otherwise): for each N, a synthetic
corpus of N documents, each 2-3 sections of the restoration corpus from different source documents in a seeded random
order under a unique title (``Synthetic document 000123``), so no chunk text repeats (checked before ingest); the
sections are dealt from successive shuffles, so each is reused about equally, and a smaller corpus is the first N
documents of a larger one. Each N runs in a fresh process: a cold ingest into an empty Chroma store (split into
embedding and the rest: chunking and Chroma's reads and writes), the store's size on disk (allocated blocks, as
``du``), the p50 of 100 suite questions each embedded and sent to Chroma for k=10, and peak RSS. Then a least-squares
line of ingest seconds against chunks (slope with its standard error and 95 % t interval, intercept, R², each point's
residual), as measured and with each size's seconds divided by its load factor (its embedding seconds per chunk
over the fastest size's: embedding a chunk is the same work at any size, so that factor is other processes' load
on the shared cores), the marginal cost per 1,000 chunks between consecutive sizes, and where the load-adjusted
marginal cost leaves the smallest size's cost per chunk by more than 20 %.

Run: ``python bench/ingest.py --docs 1000,10000,50000 [--backend onnx-int8] [--seed 0] [--save-rows rows.json]``;
``--report-rows rows.json`` prints the analysis of saved figures again without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.corpus.documents import Corpus, Document

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
    return run_child([f"--{mode}", backend, "--scratch", str(scratch)], backend)


def run_child(args: list[str], what: str) -> dict[str, Any]:
    """This script in a fresh process (so its peak RSS is its own); its last stdout line is a JSON result."""
    cmd = [sys.executable, __file__, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stderr[-3000:]}")
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


# ------------------------------------------------------------------------------------ scaling: synthetic corpus

SCALING_SOURCE = ROOT / "corpora" / "restoration"
SCALING_BACKEND = "onnx-int8"  # the fastest backend that passes the quality guard above on the development machine
BACKENDS = ("torch", "onnx", "onnx-int8")
SECTIONS_PER_DOC = (2, 3)
MAX_DOCS = 999_999  # six-digit document numbers
SCALING_K = 10
LINEAR_TOLERANCE = 0.20  # a step's marginal cost per chunk this far from the smallest size's reads as non-linear
_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE_LINE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_FRONT_MATTER = "---"


@dataclass(frozen=True)
class Section:
    """The text under one Markdown heading of a source document (the text before the first heading is headed by
    the document's title)."""

    doc: Document
    heading: str
    text: str


def corpus_sections(corpus: Corpus) -> list[Section]:
    """Every section with text, of every document, in corpus order."""
    sections: list[Section] = []
    for doc in corpus:
        heading, lines, in_fence = doc.title, [], False
        for line in doc.body.split("\n"):
            if _FENCE_LINE.match(line):
                in_fence = not in_fence
            match = None if in_fence else _HEADING_LINE.match(line)
            if match is None:
                lines.append(line)
                continue
            if "\n".join(lines).strip():
                sections.append(Section(doc, heading, "\n".join(lines).strip()))
            heading, lines = match.group(1), []
        if "\n".join(lines).strip():
            sections.append(Section(doc, heading, "\n".join(lines).strip()))
    return sections


def draw_documents(sections: Sequence[Section], n: int, seed: int) -> list[list[Section]]:
    """``n`` groups of 2 or 3 sections, each from a different source document, in random order.

    Sections are dealt from successive seeded shuffles of all of them, so each is used before any is used again;
    a section that would repeat a source already in the group goes back on top of the deck. The draw does not
    depend on ``n``: the first n groups of a larger draw are the smaller draw.
    """
    if len({s.doc.id for s in sections}) < max(SECTIONS_PER_DOC):
        raise SystemExit(f"the source corpus needs sections from at least {max(SECTIONS_PER_DOC)} documents")
    rng = random.Random(seed)
    deck: list[int] = []
    groups: list[list[Section]] = []
    for _ in range(n):
        size = rng.choice(SECTIONS_PER_DOC)
        group: list[int] = []
        passed: list[int] = []
        while len(group) < size:
            if not deck:
                deck = rng.sample(range(len(sections)), len(sections))
            card = deck.pop()
            if any(sections[card].doc.id == sections[g].doc.id for g in group):
                passed.append(card)
            else:
                group.append(card)
        deck.extend(reversed(passed))
        groups.append([sections[i] for i in group])
    return groups


def render_document(number: int, group: Sequence[Section]) -> tuple[str, str]:
    """(document id, file text) in the corpus format: front matter, then an H1 title and one H2 per section.

    Every chunk's text starts with its heading path, ``Synthetic document 000123 > <heading> (<source id>)``: the
    title is unique to the document and the source id to the section within it, so chunk texts cannot repeat.
    """
    doc_id, title = f"syn-{number:06d}", f"Synthetic document {number:06d}"
    first = group[0].doc
    front = [_FRONT_MATTER, f"id: {doc_id}", f"kind: {first.kind}", f"title: {json.dumps(title)}",
             f"jurisdiction: {json.dumps(first.jurisdiction, ensure_ascii=False)}", f"date: {first.date}",
             _FRONT_MATTER]
    body = [f"# {title}", *(f"## {s.heading} ({s.doc.id})\n\n{s.text}" for s in group)]
    return doc_id, "\n".join(front) + "\n" + "\n\n".join(body) + "\n"


def write_synthetic_corpus(source: Path, target: Path, n: int, seed: int) -> Path:
    """Write ``n`` synthetic documents under ``target`` (an absent or empty directory), one folder per kind as in
    corpora/restoration; returns ``target``."""
    from harness.corpus.documents import load_corpus

    if target.exists() and any(target.iterdir()):
        raise SystemExit(f"{target} is not empty; the synthetic corpus needs a directory of its own")
    for number, group in enumerate(draw_documents(corpus_sections(load_corpus(source)), n, seed)):
        doc_id, text = render_document(number, group)
        folder = target / f"{group[0].doc.kind}s"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{doc_id}.md").write_text(text, encoding="utf-8")
    return target


class TimedEmbedder:
    """An embedder that adds up the seconds spent in ``embed``: ingest's share spent on the model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    @property
    def batch_size(self) -> int:
        return int(getattr(self.inner, "batch_size", 64))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        began = time.perf_counter()
        try:
            return np.asarray(self.inner.embed(texts))
        finally:
            self.seconds += time.perf_counter() - began


def suite_questions(limit: int = QUERIES) -> list[str]:
    from harness.config.suite import load_suite

    return list(dict.fromkeys(case.question for path in SUITES for case in load_suite(ROOT / path).cases))[:limit]


def measure_scale(corpus_dir: Path, backend: str, store_dir: Path) -> dict[str, Any]:
    """Runs in its own process: a cold ingest of one synthetic corpus, then the query latency against it."""
    from harness.config.suite import ChunkingConfig, EmbedderConfig
    from harness.corpus.chunking import chunk_corpus
    from harness.corpus.documents import load_corpus
    from harness.retrieval.build import ingest, open_store
    from harness.retrieval.chroma_store import IndexKey
    from harness.retrieval.embedders import get_embedder

    out: dict[str, Any] = {"backend": backend}
    questions = suite_questions()
    chunking = ChunkingConfig()
    corpus = load_corpus(corpus_dir)
    texts = [chunk.text for chunk in chunk_corpus(corpus, chunking)]
    out.update(docs=len(corpus), chunks=len(texts), distinct_chunks=len(set(texts)))
    if out["distinct_chunks"] != out["chunks"]:
        raise SystemExit(f"{corpus_dir}: {out['chunks'] - out['distinct_chunks']} chunk texts repeat")
    del texts
    embedder = get_embedder(EmbedderConfig(backend=backend))
    embedder.embed(["warm up"])
    timed = TimedEmbedder(embedder)
    store = open_store(store_dir)
    began = time.perf_counter()
    report = ingest(corpus, chunking, timed, store)
    out["ingest_s"], out["embed_s"] = time.perf_counter() - began, timed.seconds
    if report.embedded != report.total or report.total != out["chunks"]:
        raise SystemExit(f"the ingest embedded {report.embedded} of {report.total} chunks; not a cold run")
    out["rss_after_ingest_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    index = store.open(IndexKey(corpus.name, embedder.name, chunking.label), embedder)
    index.query_many(embedder.embed([questions[0]]), SCALING_K)  # the first query loads the index; not counted
    embed_ms, chroma_ms, total_ms = [], [], []
    for question in questions:
        began = time.perf_counter()
        vector = embedder.embed([question])
        embedded = time.perf_counter()
        hits = index.query_many(vector, SCALING_K)
        done = time.perf_counter()
        if len(hits[0]) != min(SCALING_K, report.total):
            raise SystemExit(f"a query returned {len(hits[0])} chunks, not {SCALING_K}")
        embed_ms.append((embedded - began) * 1000)
        chroma_ms.append((done - embedded) * 1000)
        total_ms.append((done - began) * 1000)
    out.update(queries=len(questions), query_p50_ms=statistics.median(total_ms),
               query_embed_p50_ms=statistics.median(embed_ms), query_chroma_p50_ms=statistics.median(chroma_ms))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path``, as ``du`` counts them (blocks, not apparent sizes)."""
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def hnsw_usage(store_dir: Path) -> int:
    """The part of an embedded Chroma store in its segment folders (the HNSW files); the rest is chroma.sqlite3
    (texts, metadata, the full-text index and the log of written vectors)."""
    return sum(disk_usage(folder) for folder in (store_dir / "chroma").iterdir() if folder.is_dir())


@dataclass(frozen=True)
class LineFit:
    """Least squares ``y = intercept + slope * x``; the slope interval is a t interval with n - 2 degrees of
    freedom (None below three points, where a line fits exactly and says nothing of its own error)."""

    slope: float
    intercept: float
    r_squared: float
    slope_stderr: float | None
    slope_low: float | None
    slope_high: float | None
    fitted: list[float]
    residuals: list[float]


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    from scipy import stats

    if len(x) != len(y) or len(set(x)) < 2:
        raise ValueError("a line needs points at two or more different x")
    result = stats.linregress(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    fitted = [float(result.intercept + result.slope * value) for value in x]
    stderr = low = high = None
    if len(x) >= 3:
        stderr = float(result.stderr)
        half = float(stats.t.ppf(0.975, len(x) - 2)) * stderr
        low, high = float(result.slope) - half, float(result.slope) + half
    return LineFit(slope=float(result.slope), intercept=float(result.intercept), r_squared=float(result.rvalue) ** 2,
                   slope_stderr=stderr, slope_low=low, slope_high=high, fitted=fitted,
                   residuals=[float(observed - f) for observed, f in zip(y, fitted, strict=True)])


def load_factors(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Each size's embedding seconds per chunk over the fastest size's.

    Embedding a chunk is the same work at any corpus size, so this is how much the machine's load (other processes
    on shared cores) slowed that size's run: 1.0 for the least loaded one.
    """
    per_chunk = [row["embed_s"] / row["chunks"] for row in rows]
    return [value / min(per_chunk) for value in per_chunk]


def linearity(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Marginal seconds per 1,000 chunks between consecutive sizes, as measured and at the least loaded size's
    speed (each size's seconds divided by its load factor), each as a ratio to the smallest size's average.

    ``linear`` judges the load-adjusted ratio against LINEAR_TOLERANCE: with the load divided out, embedding costs
    the same per chunk at every size, so only what grows with the corpus (chunking and Chroma) can bend the line.
    """
    factors = load_factors(rows)
    adjusted = [row["ingest_s"] / factor for row, factor in zip(rows, factors, strict=True)]
    base_raw = rows[0]["ingest_s"] / rows[0]["chunks"] * 1000
    base_adjusted = adjusted[0] / rows[0]["chunks"] * 1000
    steps = []
    for i in range(1, len(rows)):
        added = (rows[i]["chunks"] - rows[i - 1]["chunks"]) / 1000
        raw = (rows[i]["ingest_s"] - rows[i - 1]["ingest_s"]) / added
        step: dict[str, Any] = {"from": rows[i - 1]["chunks"], "to": rows[i]["chunks"], "raw_s": raw,
                                "raw_ratio": raw / base_raw, "adjusted_s": (adjusted[i] - adjusted[i - 1]) / added}
        step["adjusted_ratio"] = step["adjusted_s"] / base_adjusted
        step["linear"] = abs(step["adjusted_ratio"] - 1) <= LINEAR_TOLERANCE
        steps.append(step)
    return steps


def scale_ingest(sizes: list[int], backend: str, seed: int, save_rows: Path | None = None) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; backend {backend}; synthetic corpora "
              f"of {', '.join(f'{n:,}' for n in sizes)} documents from {SCALING_SOURCE.relative_to(ROOT)} (seed "
              f"{seed}); each size once, in its own process", flush=True)
        if backend != "torch":
            made = child("export", backend, scratch)
            print(f"first use of {backend}: export found or made in {made['export_s']:.1f} s ({made['embedder']})")
        print(f"\n{'docs':>7s}{'chunks':>8s}{'ingest':>9s}{'chunks/s':>9s}{'embed':>8s}{'other':>8s}{'index':>9s}"
              f"{'per 1k':>8s}{'query p50':>10s}{'embed':>7s}{'chroma':>7s}{'peak RSS':>9s}{'load':>6s}")
        print(f"{'':15s}{'s':>9s}{'':9s}{'s':>8s}{'s':>8s}{'MB':>9s}{'MB':>8s}{'ms':>10s}{'ms':>7s}{'ms':>7s}"
              f"{'MB':>9s}", flush=True)
        rows: list[dict[str, Any]] = []
        for n in sizes:
            corpus_dir = write_synthetic_corpus(SCALING_SOURCE, scratch / f"synthetic-{n}", n, seed)
            store_dir = scratch / f"store-{n}"
            row = run_child(["--scale-measure", str(corpus_dir), "--backend", backend, "--scratch", str(store_dir)],
                            f"{n:,} documents")
            row.update(index_bytes=disk_usage(store_dir), hnsw_bytes=hnsw_usage(store_dir),
                       other_s=row["ingest_s"] - row["embed_s"], load=os.getloadavg()[0])
            rows.append(row)
            shutil.rmtree(corpus_dir)
            shutil.rmtree(store_dir)  # the next size starts from an empty store too, and the disk stays free
            print(f"{row['docs']:7,d}{row['chunks']:8,d}{row['ingest_s']:9.1f}{row['chunks'] / row['ingest_s']:9.1f}"
                  f"{row['embed_s']:8.1f}{row['other_s']:8.1f}{row['index_bytes'] / 1e6:9.1f}"
                  f"{row['index_bytes'] / 1e3 / row['chunks']:8.2f}{row['query_p50_ms']:10.1f}"
                  f"{row['query_embed_p50_ms']:7.1f}{row['query_chroma_p50_ms']:7.1f}{row['peak_rss_mb']:9.0f}"
                  f"{row['load']:6.1f}", flush=True)
        print(f"(every chunk text distinct: {all(r['distinct_chunks'] == r['chunks'] for r in rows)}; query p50 over "
              f"{rows[0]['queries']} suite questions, each embedded then sent to Chroma for k={SCALING_K}; "
              f"'other' is chunking and Chroma's reads and writes)")
        if save_rows is not None:
            save_rows.write_text(json.dumps(rows, indent=1) + "\n")
        report_scaling(rows)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report_scaling(rows: Sequence[dict[str, Any]]) -> None:
    if len(rows) < 2:
        print("\none size only: no line to fit")
        return
    chunks = [row["chunks"] for row in rows]
    factors = load_factors(rows)
    adjusted = [row["ingest_s"] / factor for row, factor in zip(rows, factors, strict=True)]
    print("\nload factor of each size, its embedding seconds per chunk over the fastest size's (embedding a chunk is "
          f"the same work at any size, so this is the machine's load): {', '.join(f'x{f:.2f}' for f in factors)}")
    print(f"ingest seconds against chunks, least squares over {len(rows)} sizes:")
    fits = {"as measured": fit_line(chunks, [row["ingest_s"] for row in rows]),
            "load-adjusted (each size's seconds divided by its load factor)": fit_line(chunks, adjusted)}
    for label, fit in fits.items():
        if fit.slope_stderr is None:
            interval = "no interval from two points"
        else:
            assert fit.slope_low is not None and fit.slope_high is not None
            interval = (f"standard error {fit.slope_stderr * 1000:.2f}; 95% interval {fit.slope_low * 1000:.2f} to "
                        f"{fit.slope_high * 1000:.2f}, t with {len(rows) - 2} df")
        print(f"  {label}: slope {fit.slope * 1000:.2f} s per 1,000 chunks ({interval}); intercept "
              f"{fit.intercept:+.1f} s; R² {fit.r_squared:.5f}")
        seconds = [row["ingest_s"] for row in rows] if label == "as measured" else adjusted
        for row, observed, fitted, residual in zip(rows, seconds, fit.fitted, fit.residuals, strict=True):
            print(f"    {row['docs']:,} docs, {row['chunks']:,} chunks: {observed:.1f} s against the line's "
                  f"{fitted:.1f} s, residual {residual:+.1f} s ({residual / fitted:+.1%})")
    steps = linearity(rows)
    print("marginal seconds per 1,000 chunks between consecutive sizes, load-adjusted (as measured), x the smallest "
          "size's average:")
    print(f"  up to {chunks[0]:,} chunks (average): {adjusted[0] / chunks[0] * 1000:.2f} "
          f"({rows[0]['ingest_s'] / chunks[0] * 1000:.2f})")
    for step in steps:
        print(f"  {step['from']:,} -> {step['to']:,} chunks: {step['adjusted_s']:.2f} x{step['adjusted_ratio']:.2f} "
              f"({step['raw_s']:.2f} x{step['raw_ratio']:.2f})")
    other = ", ".join(f"{row['other_s'] / row['chunks'] * 1000:.2f} ({row['other_s'] / f / row['chunks'] * 1000:.2f})"
                      for row, f in zip(rows, factors, strict=True))
    print(f"chunking and Chroma ('other') seconds per 1,000 chunks at each size, as measured (load-adjusted): {other}")
    base = rows[0]
    p50 = ", ".join(f"{r['query_p50_ms']:.1f} ms at {r['chunks']:,} (x{r['query_p50_ms'] / base['query_p50_ms']:.2f}"
                    f"; Chroma {r['query_chroma_p50_ms']:.1f} ms)" for r in rows)
    print(f"query p50: {p50}")
    index = ", ".join(f"{r['index_bytes'] / 1e3 / r['chunks']:.2f} at {r['chunks']:,} (HNSW files "
                      f"{r['hnsw_bytes'] / 1e6:.1f} of {r['index_bytes'] / 1e6:.1f} MB)" for r in rows)
    print(f"index MB per 1,000 chunks: {index}")
    ratios = ", ".join(f"x{s['adjusted_ratio']:.2f}" for s in steps)
    bent = next((s for s in steps if not s["linear"]), None)
    if bent is None:
        print(f"linear up to {chunks[-1]:,} chunks: load-adjusted, every step's marginal cost is within "
              f"{LINEAR_TOLERANCE:.0%} of the smallest size's ({ratios})")
    else:
        print(f"not linear from {bent['from']:,} -> {bent['to']:,} chunks: load-adjusted, the marginal cost is "
              f"x{bent['adjusted_ratio']:.2f} the smallest size's (tolerance {LINEAR_TOLERANCE:.0%}; every step "
              f"{ratios})")


def parse_sizes(text: str) -> list[int]:
    """``--docs``: comma-separated document counts, each 1..MAX_DOCS; returned ascending and without repeats."""
    sizes = []
    for part in text.split(","):
        try:
            value = int(part.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a whole number of documents") from None
        if not 1 <= value <= MAX_DOCS:
            raise argparse.ArgumentTypeError(f"{value} documents is outside 1..{MAX_DOCS:,}")
        sizes.append(value)
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", help="backends to compare (default torch,onnx,onnx-int8)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--docs", type=parse_sizes, metavar="N[,N,...]",
                        help="scaling mode: synthetic corpora of N documents, e.g. 1000,10000,50000")
    parser.add_argument("--backend", choices=BACKENDS, help=f"the backend for --docs (default {SCALING_BACKEND})")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic corpus draw, for --docs")
    parser.add_argument("--save-rows", type=Path, metavar="JSON", help="with --docs, also write each size's figures")
    parser.add_argument("--report-rows", type=Path, metavar="JSON",
                        help="print the fit and linearity of figures saved by --save-rows, without measuring")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--scale-measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure or args.export or args.scale_measure:
        assert args.scratch is not None
        if args.scale_measure:
            result = measure_scale(args.scale_measure, args.backend or SCALING_BACKEND, args.scratch)
        else:
            result = measure_backend(args.measure, args.scratch) if args.measure else export_first(args.export)
        print(json.dumps(result))
        return 0
    if args.report_rows is not None:
        try:
            rows = json.loads(args.report_rows.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--report-rows: cannot read {args.report_rows}: {exc}")
        report_scaling(rows)
        return 0
    if args.docs is not None:
        if args.backends is not None:
            parser.error("--backends compares backends on the restoration corpus; with --docs, choose one with "
                         "--backend")
        return scale_ingest(args.docs, args.backend or SCALING_BACKEND, args.seed, args.save_rows)
    if args.backend is not None:
        parser.error("--backend chooses the backend for --docs; to compare backends, use --backends")
    backends = [b.strip() for b in (args.backends or "torch,onnx,onnx-int8").split(",") if b.strip()]
    if "torch" not in backends:
        backends.insert(0, "torch")
    return compare_backends(backends, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
