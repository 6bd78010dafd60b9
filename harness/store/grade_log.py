"""Grades in the run store: ``grades.jsonl`` (appended and flushed one grade at a time) and ``grading_batch.json``.

Answers are logged before they are graded (a grade can wait hours for a Message Batch), so grades have a log of
their own. Reading a run applies the newest grade of each (case, variant, tier) over the record's placeholder, in
one place (:func:`apply_grades`, used by ``RunStore.records``).

Every entry names its judge (``judge``). The primary judge, Claude (:data:`PRIMARY_JUDGE`), gives the grade a case
record carries; a second judge's grades are read apart (:func:`read_judge_grades`) and never replace it. Version 1
entries had no ``judge`` field: they were all Claude's, which is what the field's default reads them as; their grades'
cache tokens are renamed as the run store's version 5 renamed them.

``grading_batch.json`` holds the open batch: its id, written as soon as the batch exists, and which custom id is
which answer, so a run killed while the batch is pending resumes by polling that batch rather than creating another.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.config.grading import PRIMARY_JUDGE
from harness.errors import RunStoreError
from harness.store.jsonl_log import append_entries, read_entries
from harness.store.records import CaseRecord, GradeRecord
from harness.store.upgrade import grade_v2

GRADES = "grades.jsonl"
BATCH = "grading_batch.json"
# 2: entries name their judge, and grades carry the cache-token names of run-store version 5 (harness.store.upgrade).
# A version-1 entry has neither: it reads as the primary judge's grade, its cache tokens renamed.
GRADE_LOG_VERSION = 2
PENDING = "grading pending"
"""The reason a sampled answer carries until its grade is logged (what an interrupted run shows)."""

GradeKey = tuple[str, str, str]  # case id, variant, tier


class GradeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = GRADE_LOG_VERSION
    case_id: str
    variant: str
    tier: str
    grade: GradeRecord
    judge: str = Field(default=PRIMARY_JUDGE, description="the judge that graded (grading.judges' name)")

    @property
    def key(self) -> GradeKey:
        return (self.case_id, self.variant, self.tier)


class OpenBatch(BaseModel):
    """A Message Batch this run created and has not finished reading."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = GRADE_LOG_VERSION
    batch_id: str
    created_at: str
    items: dict[str, GradeKey] = Field(description="custom id -> (case id, variant, tier)")
    status: str = "in_progress"
    polls: int = 0


def append_grades(run_dir: Path, entries: Iterable[GradeEntry]) -> None:
    append_entries(run_dir / GRADES, entries)


class GradeWriter:
    """Appends grades from concurrent tasks with group commit: while one fsync runs (in a thread, so the event loop
    keeps serving other calls), later grades queue, then go to disk together. ``write`` returns once its grade is
    on disk, as ``append_grades`` does; an fsync per grade on the loop would serialise every grader call."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._queued: list[GradeEntry] = []
        self._lock = asyncio.Lock()

    async def write(self, entry: GradeEntry) -> None:
        self._queued.append(entry)
        async with self._lock:
            if not self._queued:  # an earlier holder already wrote ours, and finished before we got the lock
                return
            entries, self._queued = self._queued, []
            await asyncio.to_thread(append_grades, self.run_dir, entries)


def read_grades(run_dir: Path) -> dict[GradeKey, GradeRecord]:
    """The primary judge's newest grade per key. A torn last line is ignored (the process died writing it)."""
    return read_judge_grades(run_dir).get(PRIMARY_JUDGE, {})


def read_second_judges(run_dir: Path) -> dict[str, dict[GradeKey, GradeRecord]]:
    """The second judges' newest grade per key, by judge name (empty when only Claude graded)."""
    return {name: grades for name, grades in read_judge_grades(run_dir).items() if name != PRIMARY_JUDGE}


def read_judge_grades(run_dir: Path) -> dict[str, dict[GradeKey, GradeRecord]]:
    """Every judge's newest grade per key, by judge name."""
    out: dict[str, dict[GradeKey, GradeRecord]] = {}
    entries = read_entries(run_dir / GRADES, lambda data, _: GradeEntry.model_validate(_current(data)), "grade",
                           "remove or repair that line, then resume")
    for entry in entries:
        out.setdefault(entry.judge, {})[entry.key] = entry.grade
    return out


def _current(data: Any) -> Any:
    """A grade-log entry in this version's form: version 1 wrote the grade's cache tokens under older names (and no
    ``judge``, which the field's default reads as the primary judge)."""
    if isinstance(data, dict) and data.get("schema_version") == 1 and isinstance(data.get("grade"), dict):
        return {**data, "schema_version": GRADE_LOG_VERSION, "grade": grade_v2(data["grade"])}
    return data


def apply_grades(records: Iterable[CaseRecord], grades: dict[GradeKey, GradeRecord]) -> Iterator[CaseRecord]:
    for record in records:
        for tier, generation in record.generations.items():
            grade = grades.get((record.case_id, record.variant, tier))
            if grade is not None:
                generation.grade = grade
        yield record


def read_open_batch(run_dir: Path) -> OpenBatch | None:
    path = run_dir / BATCH
    if not path.exists():
        return None
    try:
        return OpenBatch.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunStoreError(
            f"{path}: damaged batch state: {str(exc).splitlines()[0]}",
            hint="if the batch is known to be finished, delete the file and resume (its answers are graded anew)",
        ) from exc


def write_open_batch(run_dir: Path, batch: OpenBatch) -> None:
    from harness.store.store import atomic_write_text

    atomic_write_text(run_dir / BATCH, json.dumps(batch.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


def close_batch(run_dir: Path) -> None:
    (run_dir / BATCH).unlink(missing_ok=True)
