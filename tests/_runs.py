"""Shared by the run-store command tests: a small suite on the fixture corpus, run for real through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harness.cli.main import app

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"

SUITE = f"""\
name: mini
corpus: {FIXTURE}
chunking: {{max_chars: 600, overlap: 80}}
k: 5
metrics: [recall@5, precision@5, hit@5, mrr, ndcg@5, map]
variants:
  - {{name: dense, retriever: dense}}
  - {{name: bm25, retriever: bm25}}
  - {{name: hybrid, retriever: hybrid}}
generation:
  context_chunks: 2
  max_tokens: 32
  tiers: [local]
  variants: [dense, hybrid]
EXTRA
cases:
  - id: marlow-ice
    question: How far inside the exterior wall must the ice barrier reach in Marlow County?
    reference: At least 36 inches inside the exterior wall line.
    relevant: {{code-r905-1-2-marlow: 3, code-r905-1-2-model: 1}}
    category: jurisdiction
    must_include: ["36 inches"]
    generate: true
  - id: valleys
    question: Does Marlow County require ice barrier in valleys?
    reference: Yes, in every valley, 18 inches each side of the centre line.
    relevant: {{code-r905-1-2-marlow: 3}}
    category: code-section
    generate: true
  - id: port-ellis
    question: What does Port Ellis require instead of an ice barrier?
    reference: An enhanced underlayment for wind.
    relevant: {{code-r905-1-2-port-ellis: 3}}
    category: jurisdiction
  - id: nowhere
    question: What is the hail-resistance class required for metal roofing in Anchorage?
    reference: Not covered by the corpus.
    relevant: {{}}
    category: not-in-corpus
    generate: true
"""


def write_suite(path: Path, extra: str = "") -> Path:
    path.write_text(SUITE.replace("EXTRA\n", extra), encoding="utf-8")
    return path


def fleet_file(path: Path, *urls: str) -> Path:
    hosts = "\n".join(
        f"  - {{name: h{i}, url: '{url}', kind: openai, endpoint: completion, model: gemma3-270m, "
        f"cost: {{watts: 65, usd_per_kwh: 0.15, hardware_usd_per_hour: 0.02}}}}"
        for i, url in enumerate(urls)
    )
    path.write_text(f"strategy: race\ntimeout_s: 5\nfallback: none\nhosts:\n{hosts}\n", encoding="utf-8")
    return path


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines() if line.strip()]


def write_records(run_dir: Path, rows: list[dict]) -> None:
    (run_dir / "cases.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def main_exit(monkeypatch, *args: str) -> int:  # type: ignore[no-untyped-def]
    """Run the console entry point as a user would, returning its exit code (errors become messages, not tracebacks)."""
    import sys

    import pytest

    from harness.cli.main import main

    monkeypatch.setattr(sys, "argv", ["harness", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)
