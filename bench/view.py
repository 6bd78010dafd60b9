"""Speed of ``harness view``'s cases page on a synthetic 10,000-case run (3 variants × 2 tiers: 60,000 rows).

Targets: the first page of a cold run (a viewer just started, the run never opened) under 2 s; p95 under 300 ms
for the first page of cases and for a filtered, sorted page, each over 50 requests to the viewer served by uvicorn
on loopback (real HTTP, the whole page rendered).

Timed apart: the cold first page with no index on disk (a preview of the first rows while the table is built in the
background), how long the whole table takes to build, and the cold first page of a viewer started again, which
reads the table from the index filed beside the run. The machine's load average is printed with the numbers: on a
shared machine wall-clock times stretch with it.

Run: ``python bench/view.py [--cases N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from harness.store.records import (
    CaseRecord,
    GenerationRecord,
    GradeRecord,
    Manifest,
    RetrievalRecord,
    SuiteInfo,
    TierInfo,
)
from harness.store.store import RunStore, case_record_line
from harness.view.app import create_app

VARIANTS = ("dense", "bm25", "hybrid")
TIERS = ("local", "cloud")
CATEGORIES = ("estimate", "code-section", "jurisdiction", "supplement", "mold", "not-in-corpus")
WORDS = ["ice", "barrier", "eave", "valley", "inches", "wall", "roof", "shingle", "drip", "edge", "flashing",
         "underlayment", "code", "county"]


def synthetic_run(root: Path, cases: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    run = root / "reports" / "bench" / "r1"
    store = RunStore.create(run)
    store.write_manifest(Manifest(
        run_id="r1", status="complete", started_at="2026-01-01T00:00:00+00:00",
        suite=SuiteInfo(name="bench", path="bench.yaml", sha256="0" * 64, cases=cases, variants=list(VARIANTS),
                        metrics=["recall@5", "ndcg@5", "mrr"], answer_metrics=["token_f1"], k=5,
                        config={"generation": {"context_chunks": 2, "tiers": list(TIERS)}}),
        tiers={tier: TierInfo(status="run") for tier in TIERS},
    ))  # fmt: skip
    lines = []
    for i in range(cases):
        question = " ".join(rng.choices(WORDS, k=12)) + f" case {i}?"
        for variant in VARIANTS:
            ranked = [(f"doc-{rng.randrange(500)}", round(rng.random() * 10, 3)) for _ in range(5)]
            generations = {}
            for tier in TIERS:
                graded = rng.random() < 0.3
                scores = {c: rng.randrange(4) for c in ("correctness", "faithfulness", "completeness")}
                grade = (GradeRecord(status="graded", scores=scores, score=sum(scores.values()) / 9,
                                     confident_but_wrong=rng.random() < 0.1, rationale="synthetic")
                         if graded else GradeRecord.unmeasured("not sampled"))
                generations[tier] = GenerationRecord(
                    status="ok", tier=tier, text=" ".join(rng.choices(WORDS, k=40)), host="h0", model="m",
                    latency_s=rng.random() * 3, cost_usd=rng.random() / 1000, grade=grade,
                    answer_metrics={"token_f1": rng.random()},
                )
            record = CaseRecord(
                case_id=f"case-{i:05d}", variant=variant, category=CATEGORIES[i % len(CATEGORIES)], question=question,
                reference="synthetic", relevant={ranked[0][0]: 3}, generate=True,
                retrieval=RetrievalRecord(ranked=ranked, chunks=[f"{doc}#0" for doc, _ in ranked],
                                          metrics={"recall@5": rng.random(), "ndcg@5": rng.random(),
                                                   "mrr": rng.random()}),
                generations=generations,
            )  # fmt: skip
            lines.append(case_record_line(record))
    store.cases_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store.release()
    return root / "reports"


def timed(client: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url)
        out.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:500]
    return out


@contextmanager
def serving(reports: Path, *, read_only: bool) -> Iterator[str]:
    """A viewer on a free loopback port; yields the URL of the run's cases page."""
    server = uvicorn.Server(uvicorn.Config(create_app(reports, read_only=read_only), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/runs/bench/r1/cases"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        reports = synthetic_run(Path(tmp), args.cases)
        print(f"synthetic run: {args.cases} cases × {len(VARIANTS)} variants × {len(TIERS)} tiers "
              f"({args.cases * len(VARIANTS) * len(TIERS):,} rows) written in {time.perf_counter() - start:.1f} s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        failed = False
        with httpx.Client(timeout=600) as client:
            # 1. A viewer that may write: the run is cold and has no index on disk.
            with serving(reports, read_only=False) as base:
                start = time.perf_counter()
                first = client.get(base)
                cold = time.perf_counter() - start
                preview = 'id="indexing"' in first.text
                ready = client.get(base + "/ready").json()["ready"]
                while not ready:
                    ready = client.get(base + "/ready").json()["ready"]
                built = time.perf_counter() - start
                ok = cold < 2.0
                failed |= not ok
                shown = "a preview of the first rows" if preview else "whole table"
                print(f"cold first page, no index: {cold:.2f} s ({shown}) {'OK' if ok else 'OVER'} (target < 2 s); "
                      f"whole table built (and filed) after {built:.2f} s")
            # 2. A viewer started again: the table comes from the index beside the run.
            with serving(reports, read_only=True) as base:
                start = time.perf_counter()
                first = client.get(base)
                cold = time.perf_counter() - start
                whole = 'id="indexing"' not in first.text
                ok = cold < 2.0 and whole
                failed |= not ok
                print(f"cold first page, index on disk: {cold:.2f} s ({'whole table' if whole else 'a preview'}) "
                      f"{'OK' if ok else 'OVER'} (target < 2 s)")
                pages = {
                    "first page": base,
                    "filtered page": base + "?tier=local&category=jurisdiction&grade=graded&score_min=0.3&q=valley"
                                            "&sort=score&desc=1",
                    "failure kind": base + "?failure=generation_miss&variant=bm25&sort=latency_s",
                }
                for name, url in pages.items():
                    times = timed(client, url, args.requests)
                    p50, p95 = statistics.median(times), quantile(times, 0.95)
                    ok = p95 < 0.300
                    failed |= not ok
                    print(f"{name:>14}: p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  over {args.requests} "
                          f"requests  {'OK' if ok else 'OVER'} (target p95 < 300 ms)")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
