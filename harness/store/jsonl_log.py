"""The append-only JSON-lines logs beside ``cases.jsonl`` (grades, claims, labels): one writer and one reader.

A line is appended and fsynced whole, so the only torn line a reader can meet is the last one, written by a process
that died: it is skipped. A damaged line anywhere else is an error naming the file and line, since skipping it would
lose data silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from harness.errors import RunStoreError

E = TypeVar("E")


def append_entries(path: Path, entries: Iterable[BaseModel]) -> None:
    """Append ``entries`` as JSON lines in one write, then flush and fsync; nothing for no entries."""
    lines = "".join(json.dumps(e.model_dump(mode="json"), sort_keys=True, allow_nan=False) + "\n" for e in entries)
    if not lines:
        return
    with path.open("a", encoding="utf-8") as handle:
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())


def read_entries(path: Path, parse: Callable[[Any, str], E], what: str, hint: str) -> list[E]:
    """Every entry of the log in the order written, ``parse(data, "file:line")`` turning a decoded line into one.

    ``parse`` raises ValueError (pydantic's ValidationError is one) for a damaged entry, or RunStoreError for one the
    reader must refuse whole (a newer log version).
    """
    if not path.exists():
        return []
    out: list[E] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(parse(json.loads(line), f"{path}:{number}"))
        except ValueError as exc:
            if number >= len(lines) - 1:
                break  # the torn last line of a writer that died
            raise RunStoreError(f"{path}:{number}: damaged {what}: {str(exc).splitlines()[0]}", hint=hint) from exc
    return out
