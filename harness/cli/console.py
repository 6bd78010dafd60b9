"""Printing for the command line: one console, error rendering, progress bars. Only cli/ prints or exits."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.errors import HarnessError

console = Console()
errors = Console(stderr=True)


def print_error(exc: HarnessError) -> None:
    """Print an error and its hint. The text is untrusted (paths, names, server bodies): it is never read as markup."""
    message = Text("error: ", style="bold red")
    message.append(exc.message)
    errors.print(message, highlight=False, soft_wrap=True)
    if exc.hint:
        hint = Text("  hint: ", style="yellow")
        hint.append(exc.hint)
        errors.print(hint, highlight=False, soft_wrap=True)


def plain(text: str, style: str = "") -> Text:
    """A table cell or line of untrusted text, shown as written (rich markup in it stays literal)."""
    return Text(text, style=style)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class RichProgress:
    """Adapts the runner's progress protocol to rich bars; silent when quiet or not a terminal for --json."""

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            disable=not enabled,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def start(self, phase: str, total: int) -> None:
        self._tasks[phase] = self._progress.add_task(phase, total=total)

    def advance(self, phase: str) -> None:
        self._progress.advance(self._tasks[phase])
