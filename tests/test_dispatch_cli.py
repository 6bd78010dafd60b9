"""``harness fleet ask`` and ``harness fleet status`` against loopback fake servers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeOllama, Reply

runner = CliRunner()


@pytest.fixture
def pair() -> Iterator[tuple[FakeOllama, FakeOllama]]:
    with FakeOllama(script=Reply.ok("slow answer", latency=1.0), name="slow") as slow, FakeOllama(
        script=Reply.ok("Drip edge is required at eaves and rakes.", latency=0.0), name="quick"
    ) as quick:
        yield slow, quick


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def write_fleet(path: Path, hosts: list[tuple[str, str, str]], **top: str) -> Path:
    lines = ["hosts:"]
    for name, url, model in hosts:
        lines += [f"  - name: {name}", f"    url: {url}", "    kind: ollama", f"    model: {model}"]
    lines += [f"{key}: {value}" for key, value in top.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ask_json_reports_winner_and_every_attempt(tmp_path: Path, pair: tuple[FakeOllama, FakeOllama]) -> None:
    slow, quick = pair
    fleet = write_fleet(tmp_path / "fleet.yaml", [("slow", slow.url, "llama3.2"), ("quick", quick.url, "llama3.2")])
    result = runner.invoke(app, ["fleet", "ask", "Is drip edge required?", "--fleet", str(fleet), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "Drip edge is required at eaves and rakes."
    assert (data["host"], data["tier"]) == ("quick", "local")
    outcomes = {a["host"]: (a["outcome"], a["cancelled"]) for a in data["attempts"]}
    assert outcomes == {"slow": ("cancelled", True), "quick": ("ok", False)}
    assert quick.requests_to("/api/chat")[0].body["messages"][-1]["content"] == "Is drip edge required?"


def test_ask_prints_answer_winner_and_attempts_table(tmp_path: Path, pair: tuple[FakeOllama, FakeOllama]) -> None:
    slow, quick = pair
    fleet = write_fleet(tmp_path / "fleet.yaml", [("slow", slow.url, "llama3.2"), ("quick", quick.url, "llama3.2")])
    result = runner.invoke(app, ["fleet", "ask", "q", "--fleet", str(fleet), "--strategy", "single"])
    assert result.exit_code == 0, result.output
    assert "slow answer" in result.stdout  # single: the first host by order, however slow
    assert "winner: slow (local, llama3.2)" in result.stdout
    assert "attempts" in result.stdout and "ok" in result.stdout
    assert quick.generations == 0


def test_ask_when_every_host_fails_prints_reasons_without_traceback(tmp_path: Path) -> None:
    with FakeOllama(script=Reply.error(500, "model runner crashed")) as broken:
        fleet = write_fleet(tmp_path / "fleet.yaml", [("broken", broken.url, "llama3.2"), ("gone", closed_port(), "m")])
        result = runner.invoke(app, ["fleet", "ask", "q", "--fleet", str(fleet)])
    assert result.exit_code == 3
    assert "fleet unavailable" in result.stderr
    assert "broken: HTTP 500" in result.stderr and "gone: cannot connect" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output


def test_default_fleet_file_and_the_hint_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: tuple[FakeOllama, FakeOllama]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["fleet", "status"])
    assert result.exit_code == 2
    assert ".harness/fleet.yaml does not exist" in result.stderr
    assert "harness fleet up --local" in result.stderr

    _, quick = pair
    write_fleet(tmp_path / ".harness" / "fleet.yaml", [("quick", quick.url, "llama3.2")])
    result = runner.invoke(app, ["fleet", "ask", "q", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["host"] == "quick"


def test_invalid_fleet_file_names_file_line_and_field(tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.yaml", [("a", "http://127.0.0.1:1", "m")], strategy="fastest")
    result = runner.invoke(app, ["fleet", "ask", "q", "--fleet", str(fleet)])
    assert result.exit_code == 2
    assert f"{fleet}:6: strategy" in result.stderr


def test_status_json_and_table(tmp_path: Path) -> None:
    with FakeOllama(models=("llama3.2:latest",), version="0.6.3") as fake:
        hosts = [("good", fake.url, "llama3.2"), ("nomodel", fake.url, "mistral"), ("gone", closed_port(), "m")]
        fleet = write_fleet(tmp_path / "fleet.yaml", hosts)
        result = runner.invoke(app, ["fleet", "status", "--fleet", str(fleet), "--json"])
        assert result.exit_code == 0, result.output
        rows = {row["host"]: row for row in json.loads(result.stdout)}
        assert rows["good"]["reachable"] is True and rows["good"]["version"] == "0.6.3"
        assert rows["good"]["model_present"] is True
        assert rows["nomodel"]["reachable"] is True and rows["nomodel"]["model_present"] is False
        assert rows["gone"]["reachable"] is False and rows["gone"]["error"]
        assert all(row["latency_s"] >= 0 for row in rows.values())
        assert fake.generations == 0  # status never generates

        result = runner.invoke(app, ["fleet", "status", "--fleet", str(fleet)])
        assert result.exit_code == 0, result.output
        for name in ("good", "nomodel", "gone", "0.6.3"):
            assert name in result.stdout
