"""Shared by the run-store command tests: fleet files, the CLI run for real, and the run logs it writes.

The suites they run come from :mod:`_suites`.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harness.cli.main import app


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
