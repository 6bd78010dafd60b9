"""`harness history`: the table and chart across real runs, and the EWMA drift alarm, checked by simulation."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from _runs import invoke, main_exit, records, write_records

from harness.metrics.stats.control_chart import ewma_drift


def alarm_rate(shift: float, shifted_runs: int, trials: int = 2000, seed: int = 0) -> float:
    """Share of trials alarming on the latest run: ten runs in control, then ``shifted_runs`` off by ``shift`` SD."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(trials):
        series = [*rng.normal(0.7, 0.02, 10), *(rng.normal(0.7 + shift * 0.02, 0.02, shifted_runs))]
        drift = ewma_drift(list(series), window=10, limit=3.0, lam=0.3)
        alarms += bool(drift.alarm)
    return alarms / trials


def test_single_run_noise_does_not_alarm_and_a_sustained_shift_does() -> None:
    in_control = alarm_rate(0.0, 1)
    one_bad_run = alarm_rate(3.0, 1)  # a single run three SDs off: noise a chart must ride out
    three_at_3 = alarm_rate(-3.0, 3)  # three runs in a row three SDs down
    three_at_4 = alarm_rate(-4.0, 3)
    print(f"\nalarm rate on the latest run (limit 3, lambda 0.3, 10 earlier runs): in control {in_control:.2%}, "
          f"one run 3 SD off {one_bad_run:.1%}, three runs 3 SD off {three_at_3:.1%}, 4 SD off {three_at_4:.1%}")
    assert in_control <= 0.01
    assert one_bad_run <= 0.10
    assert three_at_3 >= 0.5
    assert three_at_4 >= 0.85


def test_the_noise_floor_keeps_a_deterministic_series_quiet_within_its_sampling_error() -> None:
    # Retrieval of an unchanged system gives the same value every night; its per-case SE is 0.03.
    steady = [0.8] * 8
    assert ewma_drift([*steady, 0.82], [0.03] * 9).alarm is False
    assert ewma_drift([*steady, 0.55], [0.03] * 9).alarm is True
    unjudged = ewma_drift([0.8, 0.8])
    assert unjudged.alarm is None and "needs 3" in unjudged.reason


def add_run(runs: Path, source: str, run_id: str, started: str, shift: float, status: str = "complete") -> None:
    shutil.copytree(runs / source, runs / run_id)
    manifest = json.loads((runs / run_id / "manifest.json").read_text())
    manifest.update(run_id=run_id, started_at=started, status=status)
    (runs / run_id / "manifest.json").write_text(json.dumps(manifest))
    rows = records(runs / run_id)
    for row in rows:
        metrics = row["retrieval"]["metrics"]
        if row["variant"] == "hybrid" and metrics["ndcg@5"] is not None:
            metrics["ndcg@5"] = min(1.0, max(0.0, metrics["ndcg@5"] + shift))
    write_records(runs / run_id, rows)


def test_history_writes_table_and_charts_and_alarms_on_a_drop(mini_runs: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    runs = reports / "mini"
    runs.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for night in range(6):
        add_run(mini_runs, "base", f"n{night}", f"2026-11-{10 + night}T02:00:00+00:00", float(rng.normal(-0.1, 0.03)))
        shutil.move(mini_runs / f"n{night}", runs / f"n{night}")
    add_run(mini_runs, "base", "crashed", "2026-11-16T02:00:00+00:00", 0.0, status="partial")
    shutil.move(mini_runs / "crashed", runs / "crashed")
    data = json.loads(invoke("history", "mini", "--reports", str(reports), "--json"))
    assert [row["run"] for row in data["runs"]] == [f"n{i}" for i in range(6)]
    assert data["left_out"] == ["crashed: status partial"] and data["alarm"] is False
    series = {row["series"] for row in data["drift"]}
    assert {"ndcg@5[hybrid]", "recall@5[dense]", "latency_p50_s[local]", "cost_per_1k_usd[local]"} <= series
    assert (runs / "history.png").read_bytes().startswith(b"\x89PNG")
    assert ET.parse(runs / "history.svg").getroot().tag.endswith("svg")
    # a night where hybrid loses most of its nDCG
    add_run(mini_runs, "base", "n6", "2026-11-17T02:00:00+00:00", -0.8)
    shutil.move(mini_runs / "n6", runs / "n6")
    capsys.readouterr()
    assert main_exit(monkeypatch, "history", "mini", "--reports", str(reports)) == 4
    captured = capsys.readouterr()
    assert "drift alarm: ndcg@5[hybrid]" in captured.err
    assert "recall@5[dense]" not in captured.err  # only what moved
    assert "| ALARM |" in captured.out
    assert main_exit(monkeypatch, "history", "nosuch", "--reports", str(reports)) == 2
