"""Untrusted text reaches the terminal as text: rich markup in names, paths and server replies is shown, not parsed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.console import print_error
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "[/x] [bold red]not bold[/] [link=http://evil]"


def _harness(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "harness.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_print_error_shows_markup_literally(capsys: pytest.CaptureFixture[str]) -> None:
    print_error(ConfigError(f"unknown metric {HOSTILE!r}", path="s[/x].yaml", line=3, hint=f"not {HOSTILE}"))
    err = capsys.readouterr().err
    assert "s[/x].yaml:3: unknown metric" in err and HOSTILE in err and f"hint: not {HOSTILE}" in err


def test_a_markup_model_name_in_fleet_status_is_printed_as_written(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"hosts:\n  - {{name: h0, url: 'http://127.0.0.1:9', model: '{HOSTILE}'}}\n", encoding="utf-8")
    result = _harness(tmp_path, "fleet", "status", "--fleet", str(fleet))
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    assert result.returncode == 3  # the only host is down
    assert "[/x]" in result.stdout and "[bold red]not bold[/]" in result.stdout


def test_a_markup_metric_name_is_an_input_error_printed_as_written(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nmetrics: ['[/x]']\ncases:\n  - {id: q, question: 'what?', category: c}\n", encoding="utf-8"
    )
    result = _harness(tmp_path, "run", str(suite), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{suite}:2: metrics[0]: unknown retrieval metric '[/x]'" in result.stderr
