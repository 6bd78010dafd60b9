"""A loaded run: its typed manifest and records, and the frames built from them.

Metric names come from the run itself (its manifest, else its records), never from today's code, so an old run is
reported with the metrics it computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.errors import RunStoreError
from harness.store import frames
from harness.store.grade_log import GradeKey, read_second_judges
from harness.store.labels import LabelRecord, read_labels
from harness.store.records import CaseRecord, GradeRecord, Manifest, SuiteInfo
from harness.store.store import RunStore


@dataclass
class RunView:
    path: Path
    manifest: Manifest
    records: list[CaseRecord]
    retrieval: pd.DataFrame = field(init=False)
    generation: pd.DataFrame = field(init=False)
    _labels: list[LabelRecord] | None = field(default=None, init=False, repr=False)
    _second_judges: dict[str, dict[GradeKey, GradeRecord]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.retrieval = frames.retrieval_frame(self.records, self.metrics)
        self.generation = frames.generation_frame(self.records, self.answer_metric_names)

    @property
    def suite(self) -> SuiteInfo:
        if self.manifest.suite is None:
            raise RunStoreError(
                f"{self.path}: the manifest does not describe its suite (the run never got past its set-up)",
                hint="re-run the suite; a run that failed before it started has nothing to report",
            )
        return self.manifest.suite

    @property
    def labels(self) -> list[LabelRecord]:
        """People's labels of this run's answers (``labels.jsonl``), read when first asked for."""
        if self._labels is None:
            self._labels = read_labels(self.path)
        return self._labels

    @property
    def second_judges(self) -> dict[str, dict[GradeKey, GradeRecord]]:
        """The grades of the judges beside Claude (``grading.judges``), by judge name; empty when only Claude graded."""
        if self._second_judges is None:
            self._second_judges = read_second_judges(self.path)
        return self._second_judges

    @property
    def status(self) -> str:
        """The run's status; a run left ``running`` by a process that is gone reads "stale (pid N is gone)"."""
        return RunStore(self.path).live_status(self.manifest)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id or self.path.name

    @property
    def metrics(self) -> list[str]:
        """The retrieval metrics this run computed, in the suite's order."""
        return list(self.suite.metrics)

    @property
    def variants(self) -> list[str]:
        return list(self.suite.variants)

    @property
    def answer_metric_names(self) -> list[str]:
        """The answer metrics this run computed: from the manifest, else in the order its records hold them."""
        if self.suite.answer_metrics:
            return list(self.suite.answer_metrics)
        names: dict[str, None] = {}
        for record in self.records:
            for generation in record.generations.values():
                names.update(dict.fromkeys(generation.answer_metrics))
        return list(names)


def load_run(path: Path) -> RunView:
    store = RunStore.open(path)
    return RunView(path, store.manifest(), list(store.records()))
