"""A loaded run: manifest, records and the frames built from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report import frames
from harness.run.store import RunStore


@dataclass
class RunView:
    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    retrieval: pd.DataFrame = field(init=False)
    generation: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.retrieval = frames.retrieval_frame(self.records)
        self.generation = frames.generation_frame(self.records)

    @property
    def metrics(self) -> list[str]:
        return list(self.manifest["suite"]["metrics"])

    @property
    def variants(self) -> list[str]:
        return list(self.manifest["suite"]["variants"])

    @property
    def answer_metric_names(self) -> list[str]:
        from harness.metrics.answer import ANSWER_METRICS

        return list(ANSWER_METRICS)


def load_run(path: Path) -> RunView:
    store = RunStore.open(path)
    return RunView(path, store.manifest(), list(store.records()))
