"""Human labels in the run store: ``labels.jsonl``, one line per label, appended and flushed one at a time.

A label is a person's rubric scores for one answer (case, variant, tier), given blind. People label a finished run,
perhaps from a terminal and a browser at once, so every append takes a short ``fcntl`` lock of its own
(``.labels.lock``) and refuses a second label of the same answer by the same labeller. The run's writer lock is not
needed: labels never touch ``cases.jsonl`` or the manifest.

Labels are the gold standard the grader is measured against (agreement) and corrected by (prediction-powered
inference), so a torn or edited line is an error that names its line, except a torn last line (the writer died).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.config.criteria import CRITERIA, SCALE_MAX
from harness.errors import InputError
from harness.store.jsonl_log import append_entries, read_entries

LABELS = "labels.jsonl"
LABELS_LOCK = ".labels.lock"
LABEL_LOG_VERSION = 1
LABELLER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

AnswerKey = tuple[str, str, str]  # case id, variant, tier


class LabelRecord(BaseModel):
    """One person's blind rubric scores for one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = LABEL_LOG_VERSION
    case_id: str
    variant: str
    tier: str
    labeller: str = Field(pattern=LABELLER_PATTERN)
    scores: dict[str, int] = Field(description="criterion -> 0..3, every rubric criterion")
    confident_but_wrong: bool
    note: str | None = Field(default=None, max_length=2000)
    labelled_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @field_validator("scores")
    @classmethod
    def _every_criterion_in_range(cls, scores: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(scores) - set(CRITERIA))
        missing = [name for name in CRITERIA if name not in scores]
        if unknown or missing:
            raise ValueError(f"scores must name exactly the criteria {', '.join(CRITERIA)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else ""))
        bad = {name: value for name, value in scores.items() if not 0 <= value <= SCALE_MAX}
        if bad:
            raise ValueError(f"scores must be 0..{SCALE_MAX}: " + ", ".join(f"{k}={v}" for k, v in bad.items()))
        return {name: scores[name] for name in CRITERIA}

    @model_validator(mode="after")
    def _labelled_at_is_a_time(self) -> LabelRecord:
        datetime.fromisoformat(self.labelled_at)
        return self

    @property
    def key(self) -> AnswerKey:
        return (self.case_id, self.variant, self.tier)

    @property
    def score(self) -> float:
        """The overall score on the grader's 0..1 scale: the mean criterion over the scale's top."""
        return sum(self.scores.values()) / (SCALE_MAX * len(self.scores))


def check_labeller(name: str) -> str:
    """A labeller id is an identifier: it is shown in reports and must not carry markup or paths."""
    if not re.fullmatch(LABELLER_PATTERN, name):
        raise InputError(f"labeller {name!r} is not a valid id",
                         hint="use letters, digits and . _ @ - (up to 64 characters), e.g. --labeller alice")
    return name


@contextmanager
def _label_lock(run_dir: Path) -> Iterator[None]:
    fd = os.open(run_dir / LABELS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_labels(run_dir: Path, labels: Iterable[LabelRecord]) -> None:
    """Append labels in one write, refusing any answer a labeller has labelled before (in the file or the batch).

    All or nothing: a refused label writes none of the batch, so an import is never half done.
    """
    batch = list(labels)
    if not batch:
        return
    with _label_lock(run_dir):
        seen = {(label.labeller, label.key) for label in read_labels(run_dir)}
        for label in batch:
            mark = (label.labeller, label.key)
            if mark in seen:
                raise InputError(
                    f"{label.labeller} has already labelled answer {'/'.join(label.key)}",
                    hint="each person labels an answer once; labels are never overwritten",
                )
            seen.add(mark)
        append_entries(run_dir / LABELS, batch)


def read_labels(run_dir: Path) -> list[LabelRecord]:
    """Every label, in the order written. A torn last line is ignored (the process died writing it)."""
    return read_entries(run_dir / LABELS, lambda data, _: LabelRecord.model_validate(data), "label",
                        "remove or repair that line; labels after it are kept")


def labelled_by(run_dir: Path, labeller: str) -> set[AnswerKey]:
    """The answers this labeller has already labelled, so a labelling session never asks for one twice."""
    return {label.key for label in read_labels(run_dir) if label.labeller == labeller}
