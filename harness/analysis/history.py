"""Run history of one suite: the headline figures of every finished run, and a drift verdict on the latest.

Series, one value per run (with the sampling standard error of that value where it has one):
- retrieval: the headline metric (nDCG when measured) and recall, per variant;
- ``gap[variant]``: the graded local − cloud score, paired by case (once both tiers are graded);
- ``graded_score[tier]``: each named tier's mean graded score, for a suite with a ladder of named tiers;
- ``latency_p50_s[tier]`` and ``cost_per_1k_usd[tier]``: answered calls this run made only. An answer replayed from
  the response cache carries the latency and cost of the night that first made it, so a run that replayed every
  answer of a tier has no value there (the series skips it), and a run that replayed most of them is marked.

Reads run stores only. Runs that did not finish (``partial``, ``failed``, ``interrupted``) are listed and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import InputError, RunStoreError
from harness.metrics.stats.control_chart import Drift, ewma_drift
from harness.store.frames import TierReplays, fresh_answers, replay_summaries
from harness.store.loaded import RunView, load_run

FINISHED = ("complete",)


def headline_metric(metrics: list[str]) -> str:
    """The metric a report leads with: nDCG when the suite measures it, else the first listed."""
    return next((m for m in metrics if m.startswith("ndcg")), metrics[0])


@dataclass
class History:
    suite: str
    table: pd.DataFrame  # rows: runs (oldest first); columns: series
    errors: pd.DataFrame  # same shape: sampling standard error of each value, NaN where none
    left_out: list[str] = field(default_factory=list)
    drift: dict[str, Drift] = field(default_factory=dict)
    replays: dict[str, dict[str, TierReplays]] = field(default_factory=dict)  # run -> tier -> its replayed answers

    @property
    def alarms(self) -> dict[str, Drift]:
        return {name: d for name, d in self.drift.items() if d.alarm}

    def mostly_replayed(self, run: str) -> list[TierReplays]:
        """The tiers of ``run`` that replayed more than half their answers from the response cache."""
        return [r for r in self.replays.get(run, {}).values() if r.mostly_replayed]

    def run_label(self, run: str) -> str:
        """The run's id, marked when most of a tier's answers in it were replayed (its latency is not that night's)."""
        return f"{run} (replayed)" if self.mostly_replayed(run) else run

    def replay_rows(self) -> list[dict[str, Any]]:
        """Per run, oldest first: each tier's share of replayed answers, and whether most were replayed."""
        return [
            {
                "run": run,
                "replayed_share": {tier: r.share for tier, r in self.replays.get(run, {}).items()},
                "mostly_replayed": bool(self.mostly_replayed(run)),
            }
            for run in self.table.index
        ]


def run_dirs(reports: Path, suite: str) -> list[Path]:
    root = reports / suite
    if not root.is_dir():
        raise InputError(f"no runs of suite {suite!r} under {root}",
                         hint="pass the suite's name or file, and --reports if runs live elsewhere")
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def collect(reports: Path, suite: str) -> History:
    rows: list[tuple[str, str, dict[str, float], dict[str, float]]] = []
    replays: dict[str, dict[str, TierReplays]] = {}
    left_out = []
    for path in run_dirs(reports, suite):
        try:
            view = load_run(path)
        except RunStoreError as exc:
            left_out.append(f"{path.name}: unreadable ({exc.message})")
            continue
        if view.manifest.status not in FINISHED:
            left_out.append(f"{path.name}: status {view.manifest.status}")
            continue
        values, errors = run_series(view)
        rows.append((_when(view), view.run_id, values, errors))
        replays[view.run_id] = replay_summaries(view.generation)
    rows.sort(key=lambda row: (row[0], row[1]))
    index = pd.Index([run_id for _, run_id, _, _ in rows], name="run")
    table = pd.DataFrame([values for _, _, values, _ in rows], index=index)
    ses = pd.DataFrame([errs for _, _, _, errs in rows], index=index).reindex(columns=table.columns)
    return History(suite, table, ses, left_out, replays=replays)


def _when(view: RunView) -> str:
    return view.manifest.started_at or view.run_id


def run_series(view: RunView) -> tuple[dict[str, float], dict[str, float]]:
    """One run's headline values and their sampling standard errors."""
    values: dict[str, float] = {}
    errors: dict[str, float] = {}
    frame = view.retrieval
    if not frame.empty and view.metrics:
        measured = frame[frame["unmeasured_reason"].isna()]
        chosen = [headline_metric(view.metrics)]
        chosen += [m for m in view.metrics if m.startswith("recall")][:1]
        for variant in view.variants:
            part = measured[measured["variant"] == variant]
            for metric in chosen:
                _put(values, errors, f"{metric}[{variant}]", part[metric].dropna().astype(float))
    gen = view.generation
    if not gen.empty:
        ok = gen[gen["status"] == "ok"]
        for tier, part in fresh_answers(ok).groupby("tier", sort=True):  # replays were not timed or paid tonight
            latency = part["latency_s"].dropna().astype(float)
            if len(latency):
                values[f"latency_p50_s[{tier}]"] = float(np.median(latency))
            cost = part["cost_usd"].dropna().astype(float)
            _put(values, errors, f"cost_per_1k_usd[{tier}]", cost * 1000.0)
        graded = ok[ok["grade_score"].notna()]
        wide = graded.pivot_table(index=["case_id", "variant"], columns="tier", values="grade_score")
        if {"local", "cloud"} <= set(wide.columns):
            both = wide.dropna(subset=["local", "cloud"]).reset_index()
            for gap_variant, part in both.groupby("variant", sort=True):
                _put(values, errors, f"gap[{gap_variant}]", (part["local"] - part["cloud"]).astype(float))
        for tier in sorted(set(wide.columns) - {"local", "cloud"}):  # a named tier of a ladder: its graded score
            _put(values, errors, f"graded_score[{tier}]", wide[tier].dropna().astype(float))
    return values, errors


def _put(values: dict[str, float], errors: dict[str, float], name: str, sample: pd.Series) -> None:
    if sample.empty:
        return
    values[name] = float(sample.mean())
    if len(sample) > 1:
        errors[name] = float(sample.std(ddof=1) / math.sqrt(len(sample)))


def judge(history: History, *, window: int, limit: float, lam: float, min_runs: int = 3) -> History:
    """Attach a drift verdict for the latest run to every series."""
    for name in history.table.columns:
        values = [None if _missing(v) else float(v) for v in history.table[name]]
        ses = [None if _missing(v) else float(v) for v in history.errors[name]]
        history.drift[name] = ewma_drift(values, ses, window=window, limit=limit, lam=lam, min_runs=min_runs)
    return history


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def drift_frame(history: History) -> pd.DataFrame:
    rows = []
    for name, d in history.drift.items():
        rows.append({"series": name, "latest": d.latest, "ewma": d.ewma, "centre": d.centre, "low": d.low,
                     "high": d.high, "runs": d.runs_used,
                     "verdict": "ALARM" if d.alarm else ("ok" if d.alarm is False else f"not judged: {d.reason}")})
    return pd.DataFrame(rows)
