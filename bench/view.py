"""Speed of ``harness view``'s cases page on a synthetic 10,000-case run (3 variants × 2 tiers: 60,000 rows).

Target: p95 under 300 ms for the first page of cases and for a filtered, sorted page, each over 50 requests to the
viewer served by uvicorn on loopback (real HTTP, the whole page rendered). The first request, which loads and indexes
the run, is timed apart.

Run: ``python bench/view.py [--cases N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
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
        server = uvicorn.Server(uvicorn.Config(create_app(reports, read_only=True), host="127.0.0.1", port=0,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}/runs/bench/r1/cases"
        pages = {
            "first page": base,
            "filtered page": base + "?tier=local&category=jurisdiction&grade=graded&score_min=0.3&q=valley"
                                    "&sort=score&desc=1",
        }
        try:
            with httpx.Client(timeout=600) as client:
                cold = timed(client, base, 1)[0]
                print(f"first request (loads and indexes the run): {cold:.2f} s")
                failed = False
                for name, url in pages.items():
                    times = timed(client, url, args.requests)
                    p50, p95 = statistics.median(times), quantile(times, 0.95)
                    ok = p95 < 0.300
                    failed |= not ok
                    print(f"{name:>14}: p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  over {args.requests} "
                          f"requests  {'OK' if ok else 'OVER'} (target p95 < 300 ms)")
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
