"""``harness fleet ask`` and ``harness fleet status`` against loopback fake servers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeOllama, FakeOpenAI, Reply
from harness.localfleet.prompt import CHAT_SYSTEM, COMPLETION_HEADER, COMPLETION_STOP

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
    # chat hosts: the chat prompt style, with the answering instructions as the system message and no context
    system, user = quick.requests_to("/api/chat")[0].body["messages"]
    assert system == {"role": "system", "content": CHAT_SYSTEM}
    assert user["role"] == "user" and user["content"].endswith("\nQuestion: Is drip edge required?")


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
    assert "`harness fleet up`" in result.stderr  # --local takes a number; plain `up` starts the default fleet

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
        assert result.exit_code == 4, result.output  # some hosts up, not all
        rows = {row["host"]: row for row in json.loads(result.stdout)}
        assert rows["good"]["reachable"] is True and rows["good"]["version"] == "0.6.3"
        assert rows["good"]["model_present"] is True
        assert rows["nomodel"]["reachable"] is True and rows["nomodel"]["model_present"] is False
        assert rows["gone"]["reachable"] is False and rows["gone"]["error"]
        assert all(row["latency_s"] >= 0 for row in rows.values())
        assert fake.generations == 0  # status never generates

        result = runner.invoke(app, ["fleet", "status", "--fleet", str(fleet)])
        assert result.exit_code == 4, result.output
        for name in ("good", "nomodel", "gone", "0.6.3"):
            assert name in result.stdout


def write_openai_fleet(path: Path, hosts: list[tuple[str, str, str]]) -> Path:
    lines = ["hosts:"]
    for name, url, endpoint in hosts:
        lines += [f"  - name: {name}", f"    url: {url}", "    kind: openai", f"    endpoint: {endpoint}",
                  "    model: gemma3-270m"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ask_sends_completion_hosts_the_few_shot_prompt_with_its_stop_sequences(tmp_path: Path) -> None:
    # The fake answers on past the line break, as a base model does; the stop sequences must cut it there.
    with FakeOpenAI(script=Reply.ok("At least 36 inches [1].\nQuestion: and the valleys?")) as fake:
        fleet = write_openai_fleet(tmp_path / "fleet.yaml", [("local-1", fake.url, "completion")])
        result = runner.invoke(app, ["fleet", "ask", "How far  must the ice barrier extend?", "--fleet", str(fleet),
                                     "--max-tokens", "48", "--json"])
        assert result.exit_code == 0, result.output
        (sent,) = fake.requests_to("/v1/completions")
    assert json.loads(result.stdout)["text"] == "At least 36 inches [1]."
    prompt = sent.body["prompt"]
    assert prompt.startswith(COMPLETION_HEADER)  # the worked examples a base model continues from
    assert prompt.endswith("Question: How far must the ice barrier extend?\nAnswer:")
    assert sent.body["stop"] == list(COMPLETION_STOP)
    assert (sent.body["max_tokens"], sent.body["temperature"]) == (48, 0.0)


def test_ask_system_option_replaces_the_instructions(tmp_path: Path, pair: tuple[FakeOllama, FakeOllama]) -> None:
    _, quick = pair
    fleet = write_fleet(tmp_path / "fleet.yaml", [("quick", quick.url, "llama3.2")])
    result = runner.invoke(app, ["fleet", "ask", "q?", "--fleet", str(fleet), "--system", "Answer in French."])
    assert result.exit_code == 0, result.output
    body = quick.requests_to("/api/chat")[0].body
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert "num_ctx" not in body["options"]  # no context window forced on the host (Ollama would reload the model)


def test_ask_refuses_a_fleet_that_mixes_completion_and_chat_hosts(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fleet = write_openai_fleet(
            tmp_path / "fleet.yaml", [("base", fake.url, "completion"), ("instruct", fake.url, "chat")]
        )
        result = runner.invoke(app, ["fleet", "ask", "q?", "--fleet", str(fleet)])
        assert fake.generations == 0
    assert result.exit_code == 2
    assert f"{fleet}: hosts: the fleet mixes completion and chat endpoints" in result.stderr
    assert "chat: instruct" in result.stderr and "completion: base" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.output
