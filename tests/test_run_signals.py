"""Signals, a second writer, and a changed corpus, against real `harness run` processes on the fixture corpus.

Each run has enough retrieval cases (real MiniLM, Chroma and BM25) that a signal lands while retrieval is running.

What is measured: the time from sending the signal to the ``interrupted_at`` stamp the process writes into its manifest.
The issue asks for a stop "within a second"; the stamp is written once the run's task is cancelled (the report of what
exists is written after it), so this is the time the run took to notice the signal and stop its work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from harness.fakes.openai import FakeOpenAI
from harness.fakes.script import Reply

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    ("code-r905-1-2-marlow", "How far inside the exterior wall must the ice barrier reach in Marlow County?"),
    ("code-r905-1-2-port-ellis", "What does Port Ellis require instead of an ice barrier?"),
    ("code-s500-drying-industry", "What drying standard applies to water damage?"),
    ("est-clm-24-0117-carrier", "What did the carrier's estimate include for the roof?"),
]
CASES_PER_QUESTION = 250  # 1,000 cases x 3 variants: batched retrieval still lasts well beyond the signal
STOP_WITHIN_S = 1.0
WAIT_S = 600.0  # generous, for a loaded machine; not a speed claim


def _suite(corpus: Path, *, generate: bool = False) -> str:
    """The signals suite; with ``generate``, one case is also answered by the local tier (held by the test's fake)."""
    lines = [
        "name: signals",
        f"corpus: {corpus}",
        "chunking: {max_chars: 600, overlap: 80}",
        "k: 5",
        "metrics: [recall@5, mrr]",
        "variants:",
        "  - {name: dense, retriever: dense}",
        "  - {name: bm25, retriever: bm25}",
        "  - {name: hybrid, retriever: hybrid}",
        "cases:",
    ]
    for copy in range(CASES_PER_QUESTION):
        for number, (doc, question) in enumerate(QUESTIONS):
            lines += [
                f"  - id: q{copy}-{number}",
                f"    question: {json.dumps(f'{question} ({copy})')}",
                f"    relevant: {{{doc}: 3}}",
                "    category: c",
            ]
    if generate:
        lines[lines.index("cases:"):lines.index("cases:")] = [
            "generation: {tiers: [local], variants: [dense], max_tokens: 16}"]
        lines += ["  - id: held", "    question: How far inside the wall does the ice barrier go?",
                  "    reference: 36 inches inside the exterior wall line.", "    relevant: {code-r905-1-2-marlow: 3}",
                  "    category: c", "    generate: true"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "corpus")
    (tmp_path / "signals.yaml").write_text(_suite(tmp_path / "corpus"), encoding="utf-8")
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "HARNESS_CHROMA_URL")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _start(workdir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "harness.cli.main", "run", "signals.yaml", "--quiet", *args]
    return subprocess.Popen(command, cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli.main", "run", "signals.yaml", "--quiet", *args]
    return subprocess.run(command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=WAIT_S)


def _lines(run_dir: Path) -> list[str]:
    path = run_dir / "cases.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _wait_for_records(proc: subprocess.Popen[str], run_dir: Path, at_least: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(_lines(run_dir)) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "retrieval never started"
        time.sleep(0.05)


def _manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def _interrupt(proc: subprocess.Popen[str], run_dir: Path, signum: int) -> tuple[float, float]:
    """Send ``signum`` mid-retrieval; return (seconds to the manifest's interrupted_at, seconds to exit)."""
    _wait_for_records(proc, run_dir, 5)
    sent = time.time()
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=WAIT_S)
    exited = time.time() - sent
    assert proc.returncode == 128 + signum, stderr
    manifest = _manifest(run_dir)
    assert manifest["status"] == "interrupted" and manifest["interrupted_by"] == signal.Signals(signum).name
    assert f"--resume {run_dir.name}" in manifest["resume_with"]
    assert f"--resume {run_dir.name}" in stderr and "Traceback" not in stderr
    stamped = datetime.fromisoformat(manifest["interrupted_at"]).timestamp() - sent
    print(f"{signal.Signals(signum).name}: manifest after {stamped:.3f}s, exit after {exited:.3f}s")
    return stamped, exited


def _check_log(run_dir: Path, expected: int | None = None) -> set[tuple[str, str]]:
    keys = [(r["case_id"], r["variant"]) for r in map(json.loads, _lines(run_dir))]
    assert len(keys) == len(set(keys)), "a case was written twice"
    if expected is not None:
        assert len(keys) == expected
    return set(keys)


def test_sigint_mid_run_stops_within_a_second_and_a_second_writer_is_refused(workdir: Path) -> None:
    """The run is held on one answer the fake gives only when the test says: it is still running however long the
    second writer takes to start on a busy machine, with no race between retrieval's speed and a clock."""
    release = threading.Event()
    with FakeOpenAI(script=Reply.ok("Thirty-six inches inside the wall line.", until=release)) as fleet_host:
        (workdir / "fleet.yaml").write_text(
            "strategy: single\ntimeout_s: 600\nfallback: none\nhosts:\n"
            f"  - {{name: h0, url: '{fleet_host.url}', kind: openai, endpoint: completion, model: gemma3-270m}}\n",
            encoding="utf-8",
        )
        (workdir / "signals.yaml").write_text(_suite(workdir / "corpus", generate=True), encoding="utf-8")
        run_dir = workdir / "reports" / "signals" / "r1"
        proc = _start(workdir, "--run-id", "r1", "--fleet", "fleet.yaml")
        try:
            _wait_for_records(proc, run_dir, 5)
            second = _run(workdir, "--resume", "r1", "--fleet", "fleet.yaml")  # while the first still runs
            assert second.returncode == 2, second.stderr
            assert f"is in use by pid {proc.pid}" in second.stderr and "Traceback" not in second.stderr
            stamped, _ = _interrupt(proc, run_dir, signal.SIGINT)
        finally:
            release.set()
            proc.kill()
            proc.wait()
    assert stamped < STOP_WITHIN_S
    done = _check_log(run_dir)
    assert 0 < len(done) < (CASES_PER_QUESTION * len(QUESTIONS) + 1) * 3  # the held answer's record is not among them
    assert ("held", "dense") not in done
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "status: **interrupted**" in report and f"records in the log: {len(done)}" in report


def test_sigterm_then_an_edited_corpus_is_refused_and_a_killed_run_reads_stale(workdir: Path) -> None:
    run_dir = workdir / "reports" / "signals" / "r2"
    total = CASES_PER_QUESTION * len(QUESTIONS) * 3
    proc = _start(workdir, "--run-id", "r2")
    try:
        stamped, _ = _interrupt(proc, run_dir, signal.SIGTERM)
    finally:
        proc.kill()
        proc.wait()
    assert stamped < STOP_WITHIN_S
    before = _check_log(run_dir)

    document = workdir / "corpus" / "codes" / "code-r905-1-2-marlow.md"
    original = document.read_text(encoding="utf-8")
    document.write_text(original + "\nAn added paragraph.\n", encoding="utf-8")
    refused = _run(workdir, "--resume", "r2")
    assert refused.returncode == 2, refused.stderr
    assert "code-r905-1-2-marlow changed" in refused.stderr and "Traceback" not in refused.stderr
    assert _check_log(run_dir) == before  # nothing of the other corpus version was written
    document.write_text(original, encoding="utf-8")

    proc = _start(workdir, "--resume", "r2")
    try:
        _wait_for_records(proc, run_dir, len(before) + 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    finally:
        proc.kill()
        proc.wait()
    assert _manifest(run_dir)["status"] == "running"
    shown = subprocess.run([sys.executable, "-m", "harness.cli.main", "report", str(run_dir)], cwd=workdir,
                           env=_env(), capture_output=True, text=True, timeout=WAIT_S)
    assert shown.returncode == 0, shown.stderr
    assert f"stale (pid {proc.pid} is gone)" in shown.stdout

    finished = _run(workdir, "--resume", "r2")
    assert finished.returncode == 0, finished.stderr
    assert _manifest(run_dir)["status"] == "complete"
    _check_log(run_dir, expected=total)
