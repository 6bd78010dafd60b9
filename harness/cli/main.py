"""The ``harness`` command. Every HarnessError becomes a message and an exit code: 2 bad input, 3 runtime failure.

Typer runs in standalone mode, so usage errors (an unknown command or option, a missing argument) are printed with
the usage line and exit 2 by typer itself. That holds whichever click it bundles: typer 0.29 vendors click as
``typer._click``, so catching ``click.ClickException`` here would silently stop matching. Harness errors are turned
into exit codes inside the app (``HarnessGroup``), so the console script and an in-process ``CliRunner`` agree.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from harness.cli import commands
from harness.cli.console import print_error
from harness.errors import HarnessError

OPTIONAL_VALUE_OPTIONS = {"--ray": "local"}
"""Options whose value may be left out (typer's parser has no optional values): a bare ``--ray`` means a local Ray."""


def fill_optional_values(args: list[str]) -> list[str]:
    """``--ray`` followed by nothing, another option or a suite file gets its default value inserted."""
    out: list[str] = []
    for index, arg in enumerate(args):
        out.append(arg)
        if arg in OPTIONAL_VALUE_OPTIONS:
            following = args[index + 1] if index + 1 < len(args) else None
            if following is None or following.startswith("-") or following.endswith((".yaml", ".yml")):
                out.append(OPTIONAL_VALUE_OPTIONS[arg])
    return out


class HarnessGroup(TyperGroup):
    """The root command group: a HarnessError from any command is printed without a traceback and becomes its code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, fill_optional_values(list(args)))

    def invoke(self, ctx: Any) -> Any:  # click's Context: typer 0.29 vendors click privately
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="harness",
    cls=HarnessGroup,
    help="Evaluate RAG over a two-tier fleet: Chroma/BM25/hybrid retrieval, answers from local hosts and Claude.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
commands.register(app)


def main() -> None:
    """Console entry point: run the app, translating harness errors into messages and exit codes."""
    try:
        app(standalone_mode=True)
    except HarnessError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
