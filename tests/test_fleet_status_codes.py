"""``harness fleet status`` exit codes against real loopback servers: 0 all up, 3 none up, 4 some up."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.fleet import EXIT_ALL_UP, EXIT_NONE_UP, EXIT_SOME_UP
from harness.cli.main import app
from harness.fakes import FakeOllama

runner = CliRunner()


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def write_fleet(path: Path, hosts: list[tuple[str, str, str]]) -> Path:
    lines = ["hosts:"]
    for name, url, model in hosts:
        lines += [f"  - name: {name}", f"    url: {url}", "    kind: ollama", f"    model: {model}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("json_out", [False, True])
def test_status_exit_code_says_how_many_hosts_are_up(tmp_path: Path, json_out: bool) -> None:
    extra = ["--json"] if json_out else []
    with FakeOllama(models=("llama3.2:latest",)) as a, FakeOllama(models=("llama3.2:latest",)) as b:
        cases = {
            "all": ([("a", a.url, "llama3.2"), ("b", b.url, "llama3.2")], EXIT_ALL_UP),
            "some": ([("a", a.url, "llama3.2"), ("gone", closed_port(), "llama3.2")], EXIT_SOME_UP),
            # reachable but without its model: it cannot answer, so it is not up
            "none": ([("gone", closed_port(), "llama3.2"), ("nomodel", b.url, "mistral")], EXIT_NONE_UP),
        }
        for label, (hosts, expected) in cases.items():
            fleet = write_fleet(tmp_path / f"{label}.yaml", hosts)
            result = runner.invoke(app, ["fleet", "status", "--fleet", str(fleet), *extra])
            assert result.exit_code == expected, (label, result.output)
            for name, _, _ in hosts:
                assert name in result.stdout  # the table (or JSON) is printed whatever the code
    assert (EXIT_ALL_UP, EXIT_NONE_UP, EXIT_SOME_UP) == (0, 3, 4)


def test_status_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["fleet", "status", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "0 when every host is up" in text and "3 when none is" in text and "4 when only some are" in text
