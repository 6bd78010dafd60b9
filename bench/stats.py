"""Speed of the drift statistics: paired-bootstrap and PPI++ intervals for every category of a large run.

Target: 10,000 cases × 20 categories, 2,000 bootstrap resamples, a paired-gap bootstrap interval per category and
overall plus PPI++ intervals (each tier's mean and the gap) per category, in under 2 s on 2 cores. Printed beside the
same bootstrap written as a plain-Python loop (``random.choices`` per resample), measured in the same run.

Run: ``python bench/stats.py [--cases N] [--categories N] [--resamples N] [--repeats N] [--skip-python]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np

from harness.metrics.stats.intervals import bootstrap_group_means, percentile_intervals
from harness.metrics.stats.ppi import ppi_mean


def make_run(cases: int, categories: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic per-case grades (a 20% graded sample) and cheap predictions for both tiers."""
    rng = np.random.default_rng(seed)
    category = rng.integers(0, categories, size=cases)
    quality = rng.uniform(0.4, 0.9, size=categories)[category]
    cloud = np.clip(quality + rng.normal(0, 0.15, cases), 0, 1)
    local = np.clip(cloud - rng.uniform(0, 0.2, categories)[category] + rng.normal(0, 0.1, cases), 0, 1)
    graded = rng.random(cases) < 0.2
    return {
        "category": category,
        "local": local,
        "cloud": cloud,
        "local_pred": np.clip(local + rng.normal(0, 0.1, cases), 0, 1),
        "cloud_pred": np.clip(cloud + rng.normal(0, 0.1, cases), 0, 1),
        "graded": graded,
    }


def vectorised(run: dict[str, np.ndarray], categories: int, resamples: int) -> int:
    """Every interval the drift table shows; returns how many intervals it computed."""
    gap = run["local"] - run["cloud"]
    groups = [gap[run["category"] == c] for c in range(categories)]
    means = bootstrap_group_means(groups, n_resamples=resamples, seed=1)
    sizes = np.array([g.size for g in groups], dtype=np.float64)
    overall = means @ (sizes / sizes.sum())  # stratified by category: the overall gap from the same resamples
    intervals = percentile_intervals(np.column_stack([means, overall]))
    count = len(intervals)
    for c in range(categories):
        here = run["category"] == c
        labelled, unlabelled = here & run["graded"], here & ~run["graded"]
        for label, pred in [("local", "local_pred"), ("cloud", "cloud_pred")]:
            ppi_mean(run[label][labelled], run[pred][labelled], run[pred][unlabelled])
        ppi_mean(gap[labelled], (run["local_pred"] - run["cloud_pred"])[labelled],
                 (run["local_pred"] - run["cloud_pred"])[unlabelled])
        count += 3
    return count


def plain_python(run: dict[str, np.ndarray], categories: int, resamples: int) -> None:
    """The paired bootstrap alone, as a loop over resamples and cases."""
    rng = random.Random(1)
    gap = (run["local"] - run["cloud"]).tolist()
    category = run["category"].tolist()
    for c in range(categories):
        values = [g for g, k in zip(gap, category, strict=True) if k == c]
        means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(resamples))
        _ = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def best_of(repeats: int, work: object, *args: object) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work(*args)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-python", action="store_true", help="do not time the plain-Python loop")
    args = parser.parse_args()
    run = make_run(args.cases, args.categories)
    count = vectorised(run, args.categories, args.resamples)
    ours = best_of(args.repeats, vectorised, run, args.categories, args.resamples)
    print(f"{args.cases:,} cases x {args.categories} categories, {args.resamples:,} resamples: "
          f"{count} intervals (paired bootstrap per category and overall, PPI++ local/cloud/gap per category)")
    print(f"  numpy (harness.metrics.stats.intervals / ppi): {ours:.3f} s (best of {args.repeats})  "
          f"target < 2 s: {'met' if ours < 2.0 else 'MISSED'}")
    if not args.skip_python:
        loop = best_of(1, plain_python, run, args.categories, args.resamples)
        print(f"  plain-Python loop, bootstrap only:               {loop:.3f} s (one run)")
        print(f"  ratio plain-Python / numpy: {loop / ours:.1f}x")
    print(f"  (load average now: {statistics.fmean(_loadavg()):.2f}; figures are noisy on a shared machine)")


def _loadavg() -> list[float]:
    try:
        import os

        return list(os.getloadavg())
    except OSError:
        return [float("nan")]


if __name__ == "__main__":
    main()
