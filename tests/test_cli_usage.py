"""Every usage error exits 2 with a usage line, never a traceback: an unknown command, an unknown option and a
missing argument, for every command the app registers (walked from the app itself, so a new command is covered)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from harness.cli.main import app

runner = CliRunner()


def _commands(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    for name, command in getattr(group, "commands", {}).items():
        yield (*path, name), command
        yield from _commands(command, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = sorted(_commands(ROOT), key=lambda item: item[0])
LEAVES = [(path, command) for path, command in COMMANDS if not hasattr(command, "commands")]
GROUPS = [((), ROOT)] + [(path, command) for path, command in COMMANDS if hasattr(command, "commands")]


def _required_arguments(command: object) -> list[str]:
    return [p.name or "" for p in getattr(command, "params", []) if p.param_type_name == "argument" and p.required]


def _assert_usage_error(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert "Usage:" in result.output, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_the_app_registers_the_commands_we_document() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"run", "report", "nightly", "ingest", "fleet up", "fleet down", "fleet status", "fleet ask"} <= names


@pytest.mark.parametrize("path", [path for path, _ in GROUPS], ids=lambda p: " ".join(p) or "harness")
def test_unknown_command_is_a_usage_error(path: tuple[str, ...]) -> None:
    _assert_usage_error([*path, "frobnicate"])


@pytest.mark.parametrize("path", [path for path, _ in LEAVES], ids=" ".join)
def test_unknown_option_is_a_usage_error(path: tuple[str, ...]) -> None:
    _assert_usage_error([*path, "--no-such-option"])


MISSING = [(path, _required_arguments(command)) for path, command in LEAVES if _required_arguments(command)]


@pytest.mark.parametrize(("path", "arguments"), MISSING, ids=[" ".join(p) for p, _ in MISSING])
def test_missing_argument_is_a_usage_error(path: tuple[str, ...], arguments: list[str]) -> None:
    result = runner.invoke(app, list(path))
    assert result.exit_code == 2, (path, result.output)
    assert "Missing argument" in result.output, result.output


def test_commands_with_required_arguments_exist() -> None:
    # Guards the parametrisation above against silently testing nothing.
    assert MISSING, "no command takes a required argument: the missing-argument test would test nothing"


def test_the_installed_entry_point_prints_usage_and_exits_2() -> None:
    """The console script as a new user runs it: its own process, its own typer, no test runner in between."""
    result = subprocess.run(
        [sys.executable, "-c", "from harness.cli.main import main; main()", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Usage:" in result.stderr
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr
