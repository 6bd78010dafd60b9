"""``harness label import``: labels made elsewhere (a spreadsheet's CSV, or JSON lines), checked row by row.

Every row is checked before anything is written, and a file with any bad row imports nothing: the error names each
bad row (file:row) and what is wrong with it. A row is bad when

- its answer (case_id, variant, tier) is not a graded answer of this run (labels are compared with grades);
- a score is missing, not a whole number, or outside 0..3; the flag is not yes/no; the labeller is not an id;
- the same labeller labels the same answer twice, in the file or already in ``labels.jsonl``.

Columns (CSV header, or JSON keys): ``case_id, variant, tier, labeller``, one column per rubric criterion (or a
``scores`` object in JSON), ``confident_but_wrong``, and optionally ``note`` and ``labelled_at``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.errors import InputError
from harness.store.labels import AnswerKey, LabelRecord, append_labels, read_labels

KEY_COLUMNS = ("case_id", "variant", "tier", "labeller")
TRUE_WORDS = {"true", "yes", "y", "1"}
FALSE_WORDS = {"false", "no", "n", "0", ""}
MAX_PROBLEMS_SHOWN = 20


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a ``.csv`` or ``.jsonl`` file; ``where`` is "file:line"."""
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="pass a .csv or .jsonl file of labels")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV often starts with a byte-order mark
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in (*KEY_COLUMNS, *CRITERIA, "confident_but_wrong") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: the header lacks column(s) {', '.join(missing)}",
                             hint="columns: " + ", ".join((*KEY_COLUMNS, *CRITERIA, "confident_but_wrong", "note")))
        # Row numbers as a spreadsheet shows them: the header is line 1.
        return [(f"{path}:{number}", dict(row)) for number, row in enumerate(reader, start=2)]
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg})", hint="one JSON object per line") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: not a JSON object", hint="one JSON object per line")
            rows.append((f"{path}:{number}", row))
        return rows
    raise InputError(f"{path}: labels must be a .csv or .jsonl file, not {suffix or 'a file without extension'}",
                     hint="export the spreadsheet as CSV")


def _score(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number 0..{SCALE_MAX}, not {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{name} must be a whole number 0..{SCALE_MAX}, not {value!r}")
    if not 0 <= number <= SCALE_MAX:
        raise ValueError(f"{name} = {number} is out of range 0..{SCALE_MAX}")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value if value is not None else "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"confident_but_wrong must be yes/no (or true/false, 1/0), not {value!r}")


def label_from_row(row: dict[str, Any]) -> LabelRecord:
    """One row as a label; ValueError (with every problem of the row) when it is not one."""
    problems: list[str] = []
    for column in KEY_COLUMNS:
        if not str(row.get(column) or "").strip():
            problems.append(f"{column} is empty")
    nested = row.get("scores") if isinstance(row.get("scores"), dict) else None
    scores: dict[str, int] = {}
    for name in CRITERIA:
        value = (nested or row).get(name)
        if value is None or value == "":
            problems.append(f"{name} is missing")
            continue
        try:
            scores[name] = _score(value, name)
        except ValueError as exc:
            problems.append(str(exc))
    try:
        flag = _flag(row.get("confident_but_wrong"))
    except ValueError as exc:
        problems.append(str(exc))
        flag = False
    if problems:
        raise ValueError("; ".join(problems))
    fields: dict[str, Any] = {column: str(row[column]).strip() for column in KEY_COLUMNS}
    note = str(row.get("note") or "").strip()
    fields.update(scores=scores, confident_but_wrong=flag, note=note or None)
    if row.get("labelled_at"):
        fields["labelled_at"] = str(row["labelled_at"]).strip()
    try:
        return LabelRecord(**fields)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}"
                                   for e in exc.errors())) from None


def check_rows(rows: list[tuple[str, dict[str, Any]]], graded: Collection[AnswerKey],
               existing: Collection[tuple[str, AnswerKey]]) -> tuple[list[LabelRecord], list[str]]:
    """Every row checked: (labels, problems), each problem naming its row."""
    labels: list[LabelRecord] = []
    problems: list[str] = []
    seen: dict[tuple[str, AnswerKey], str] = {}
    already = set(existing)
    for where, row in rows:
        try:
            label = label_from_row(row)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        answer = "/".join(label.key)
        mark = (label.labeller, label.key)
        if label.key not in graded:
            problems.append(f"{where}: unknown answer {answer}: not a graded answer of this run")
        elif mark in already:
            problems.append(f"{where}: duplicate: {label.labeller} already labelled {answer} in labels.jsonl")
        elif mark in seen:
            problems.append(f"{where}: duplicate: {label.labeller} labels {answer} again (first at {seen[mark]})")
        else:
            seen[mark] = where
            labels.append(label)
    return labels, problems


def import_labels(run_dir: Path, path: Path, graded: Collection[AnswerKey]) -> list[LabelRecord]:
    """Check every row of ``path`` and append them all, or raise naming every bad row and append nothing."""
    rows = read_rows(path)
    if not rows:
        raise InputError(f"{path}: no labels in the file", hint="one row per label, after the header")
    existing = {(label.labeller, label.key) for label in read_labels(run_dir)}
    labels, problems = check_rows(rows, set(graded), existing)
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        raise InputError(
            f"{len(problems)} bad row(s) in {path}; nothing was imported:\n  " + "\n  ".join(shown)
            + (f"\n  … and {more} more" if more else ""),
            hint="fix those rows and import the file again",
        )
    append_labels(run_dir, labels)
    return labels
