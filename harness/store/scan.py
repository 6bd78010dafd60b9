"""A quick read of a big run for tables: each case record as its parsed JSON (not a validated model), with where its
line starts, and the grade log as plain dicts; and one record, validated, read from where its line starts.

:meth:`harness.store.store.RunStore.records` validates every record against the models, which costs more than
parsing the JSON itself (a 10,000-case run of 30,000 records: about 8 s of validation on top of the parse). A table
of rows needs a dozen fields of each record, so :func:`scan_cases` parses the lines (orjson) and leaves the
validation out for records of the current version; an older record is lifted and validated as the store does, so
every record comes out in the current shape. A reader that finds a field of the wrong type calls
:func:`damaged`, which validates that one line and raises the store's own error naming its file, line and field.

The same rules as the store's reader hold: a torn last line (the writer died mid-line) is left out; damage anywhere
else is an error naming its line; a record of a newer version is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.errors import RunStoreError
from harness.store.grade_log import GRADE_LOG_VERSION, GRADES, PRIMARY_JUDGE, GradeEntry, GradeKey
from harness.store.records import SCHEMA_VERSION, CaseRecord, GradeRecord
from harness.store.store import CASES, case_record_from_json


@dataclass(frozen=True)
class Line:
    """One case record as parsed JSON (current version), where its line starts in ``cases.jsonl`` and its number."""

    offset: int
    number: int
    data: dict[str, Any]


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(size, mtime in ns, inode) of a file, zeros when it is absent: what a derived cache is keyed by."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0, 0)
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _lines(path: Path, limit_bytes: int | None = None) -> Iterator[tuple[int, int, bytes, bool]]:
    """(offset, number, line, is_last) for every non-blank line; ``limit_bytes`` reads only the file's start."""
    with path.open("rb") as handle:
        data = handle.read() if limit_bytes is None else handle.read(limit_bytes)
    whole = limit_bytes is None or len(data) < limit_bytes
    offset = 0
    number = 0
    end = len(data)
    while offset < end:
        stop = data.find(b"\n", offset)
        number += 1
        if stop < 0:
            if not whole:
                return  # the rest of this line lies past what was read
            stop = end
        line = data[offset:stop]
        if line.strip():
            last = whole and data.find(b"\n", stop + 1) < 0 and not data[stop + 1:].strip()
            yield offset, number, line, last
        offset = stop + 1


def scan_cases(run_dir: Path, *, limit_bytes: int | None = None) -> Iterator[Line]:
    """Every complete case record of ``run_dir`` in file order, parsed, in the current version's shape.

    The grade log is not applied: read it with :func:`scan_grades` (a table applies the newest grade per answer).
    """
    path = run_dir / CASES
    if not path.exists():
        return
    for offset, number, line, last in _lines(path, limit_bytes):
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if last:  # written when the process died
                return
            raise RunStoreError(f"{path}:{number}: damaged record: {exc}",
                                hint="remove or repair that line, then resume") from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            # Not the current shape (or not an object): the store's reader lifts or refuses it.
            data = case_record_from_json(data, f"{path}:{number}").model_dump(mode="json")
        yield Line(offset, number, data)


def damaged(run_dir: Path, line: Line, problem: Exception) -> RunStoreError:
    """The error for a record a quick reader could not use: the store's own, naming the field, when the line fails
    validation; else one naming the line and the problem."""
    where = f"{run_dir / CASES}:{line.number}"
    try:
        case_record_from_json(line.data, where)
    except RunStoreError as exc:
        return exc
    return RunStoreError(f"{where}: this record cannot be read: {problem!r}",
                         hint="the run store was edited or written by another tool; repair the record or re-run")


def count_records(run_dir: Path) -> int:
    """Lines that hold a record (blank lines and a torn last line aside, at most one too many): cheap, for progress."""
    path = run_dir / CASES
    if not path.exists():
        return 0
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            count += chunk.count(b"\n")
    return count


def scan_grades(run_dir: Path) -> dict[GradeKey, dict[str, Any]]:
    """The primary judge's newest grade per answer as a plain dict (the shape of :class:`GradeRecord`), without
    validating each; second judges' grades are left to :func:`~harness.store.grade_log.read_second_judges`.

    A torn last line is left out; a damaged line elsewhere, or a newer log version, is an error naming its line.
    """
    path = run_dir / GRADES
    if not path.exists():
        return {}
    out: dict[GradeKey, dict[str, Any]] = {}
    for _, number, line, last in _lines(path):
        try:
            data = orjson.loads(line)
            key = (data["case_id"], data["variant"], data["tier"])
            grade = data["grade"]
            judge = data.get("judge", PRIMARY_JUDGE)
            version = data.get("schema_version", GRADE_LOG_VERSION)
            if not isinstance(grade, dict) or not all(isinstance(part, str) for part in key):
                raise ValueError("not a grade entry")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            if last:
                break
            raise RunStoreError(f"{path}:{number}: damaged grade: {exc}",
                                hint="remove or repair that line, then resume") from None
        if version != GRADE_LOG_VERSION:
            GradeEntry.model_validate(data)  # names what is wrong with an old or odd entry
            if isinstance(version, int) and version > GRADE_LOG_VERSION:
                raise RunStoreError(f"{path}:{number}: grade log version {version}; this harness reads version "
                                    f"{GRADE_LOG_VERSION}", hint="read this run with the newer harness that wrote it")
        if judge == PRIMARY_JUDGE:
            out[key] = grade
    return out


def read_record_at(run_dir: Path, offset: int, number: int) -> CaseRecord:
    """The record whose line starts at ``offset`` (line ``number``), validated, with its newest logged grades."""
    path = run_dir / CASES
    with path.open("rb") as handle:
        handle.seek(offset)
        line = handle.readline()
    where = f"{path}:{number}"
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RunStoreError(f"{where}: damaged record: {exc}",
                            hint="reload the page; the run may have been rewritten") from None
    record = case_record_from_json(data, where)
    grades = scan_grades(run_dir)
    for tier, generation in record.generations.items():
        grade = grades.get((record.case_id, record.variant, tier))
        if grade is not None:
            try:
                generation.grade = GradeRecord.model_validate(grade)
            except ValueError as exc:
                raise RunStoreError(f"{run_dir / GRADES}: damaged grade of {record.case_id}/{record.variant}/{tier}: "
                                    f"{str(exc).splitlines()[0]}", hint="remove or repair that line") from None
    return record


__all__ = ["Line", "count_records", "damaged", "file_stamp", "read_record_at", "scan_cases", "scan_grades"]
