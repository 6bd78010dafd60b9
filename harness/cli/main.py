"""The ``harness`` command. Every HarnessError becomes a message and an exit code: 2 bad input, 1 gate failed."""

from __future__ import annotations

import sys

import click
import typer

from harness.cli import commands
from harness.cli.console import print_error
from harness.errors import HarnessError

app = typer.Typer(
    name="harness",
    help="Evaluate RAG over a two-tier fleet: Chroma/BM25/hybrid retrieval, answers from local hosts and Claude.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
commands.register(app)


def main() -> None:
    """Console entry point: run the app, translating harness errors into messages and exit codes."""
    try:
        result = app(standalone_mode=False)
    except HarnessError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    # click returns the exit code of `typer.Exit(code)` instead of raising when standalone_mode is off
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
