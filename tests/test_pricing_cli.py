"""`harness run --pricing FILE`: the run is priced by that table and its manifest names it; a bad table exits 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.money import costs

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
SUITE = f"""\
name: mini
corpus: {FIXTURE}
k: 3
metrics: [recall@3]
variants:
  - {{name: bm25, retriever: bm25}}
cases:
  - id: valleys
    question: Does Marlow County require ice barrier in valleys?
    relevant: {{code-r905-1-2-marlow: 3}}
    category: code-section
"""
TABLE = """\
as_of: 2026-11-02
models:
  - id: claude-sonnet-4-5
    input: 3.00
    output: 15.00
    cache_write_5m: 3.75
    cache_write_1h: 6.00
    cache_read: 0.30
    batch_input: 1.50
    batch_output: 7.50
    source: https://example.org/pricing
    checked: 2026-11-02
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv(costs.PRICING_ENV, raising=False)
    (tmp_path / "mini.yaml").write_text(SUITE, encoding="utf-8")
    yield tmp_path
    costs.use_pricing()


def test_the_manifest_names_the_table_that_priced_the_run(workdir: Path) -> None:
    table = workdir / "prices.yaml"
    table.write_text(TABLE, encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "mini.yaml", "--run-id", "p1", "--quiet", "--pricing", str(table)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "reports" / "mini" / "p1" / "manifest.json").read_text())
    assert manifest["pricing"] == {
        "path": str(table),
        "as_of": "2026-11-02",
        "sha256": hashlib.sha256(table.read_bytes()).hexdigest(),
    }
    assert manifest["pricing_as_of"] == "2026-11-02"


def test_a_negative_price_exits_2_naming_the_file_and_line(workdir: Path) -> None:
    table = workdir / "prices.yaml"
    table.write_text(TABLE.replace("cache_read: 0.30", "cache_read: -0.30"), encoding="utf-8")
    # The real console entry point, with the table named by the environment variable instead of the option.
    env = {**os.environ, costs.PRICING_ENV: str(table), "PYTHONPATH": str(Path(__file__).parents[1])}
    command = [sys.executable, "-c", "from harness.cli.main import main; main()", "run", "mini.yaml", "--quiet"]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "prices.yaml:8" in result.stderr and "models[0].cache_read" in result.stderr
    assert "Traceback" not in result.stderr
