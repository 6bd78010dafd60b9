"""The run store: ``reports/<suite>/<run-id>/`` is the contract between running and reporting.

- ``manifest.json``: what ran (suite hash, corpus fingerprint, config, versions, git commit) and how it ended;
- ``cases.jsonl``: one record per case × variant, appended and flushed as each finishes, so nothing is lost;
- ``results.parquet`` and the reports: derived from ``cases.jsonl`` and written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import RunStoreError
from harness.run.records import SCHEMA_VERSION, CaseRecord, Manifest
from harness.run.upgrade import UPGRADES

STORE_VERSION = SCHEMA_VERSION
MANIFEST = "manifest.json"
CASES = "cases.jsonl"
RESULTS = "results.parquet"
M = TypeVar("M", bound=BaseModel)
READABLE = f"versions {', '.join(map(str, sorted({*UPGRADES, SCHEMA_VERSION})))}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def record_key(record: CaseRecord) -> tuple[str, str]:
    return record.key


def _version_of(data: dict[str, Any], where: str) -> int:
    """The schema version a manifest or record was written with (version 1 called it ``version``, or had none)."""
    version = data.get("schema_version", data.get("version", 1))
    if version == SCHEMA_VERSION or version in UPGRADES:
        return int(version)
    newer = isinstance(version, int) and version > SCHEMA_VERSION
    raise RunStoreError(
        f"{where}: run store schema version {version!r}; this harness reads {READABLE}",
        hint="read this run with the newer harness that wrote it (upgrade this one)"
        if newer
        else "re-run the suite with this version of the harness",
    )


def _parse(model: type[M], data: Any, where: str) -> M:
    """Validate one record, turning pydantic's error into one that names the file, line and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(record)"
        raise RunStoreError(
            f"{where}: {field}: {first['msg']} ({exc.error_count()} problem(s) in this record)",
            hint="the run store was edited or written by another tool; repair the record or re-run the suite",
        ) from exc


def manifest_from_json(data: Any, where: str) -> Manifest:
    if not isinstance(data, dict):
        raise RunStoreError(f"{where}: a manifest must be a JSON object", hint="re-run the suite")
    version = _version_of(data, where)
    if version != SCHEMA_VERSION:
        data = UPGRADES[version][0](data)
    return _parse(Manifest, data, where)


def case_record_from_json(data: Any, where: str) -> CaseRecord:
    if not isinstance(data, dict):
        raise RunStoreError(f"{where}: a case record must be a JSON object", hint="remove or repair that line")
    version = _version_of(data, where)
    if version != SCHEMA_VERSION:
        data = UPGRADES[version][1](data)
    return _parse(CaseRecord, data, where)


def case_record_line(record: CaseRecord) -> str:
    """One line of ``cases.jsonl``: every field, unmeasured values as ``null`` (never dropped, never NaN)."""
    return json.dumps(record.model_dump(mode="json"), sort_keys=True, allow_nan=False)


@dataclass
class RunStore:
    """One run directory."""

    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def cases_path(self) -> Path:
        return self.path / CASES

    @classmethod
    def create(cls, path: Path, manifest: Manifest | None = None) -> RunStore:
        if (path / MANIFEST).exists():
            raise RunStoreError(
                f"run directory {path} already exists",
                hint="choose another --run-id, or continue it with --resume",
            )
        store = cls(path)
        store.write_manifest(manifest or Manifest())
        store.cases_path.touch()
        return store

    @classmethod
    def open(cls, path: Path) -> RunStore:
        """Open an existing run, checking its version."""
        store = cls(path)
        if not store.manifest_path.exists():
            raise RunStoreError(
                f"{path} is not a run directory (no {MANIFEST})",
                hint="pass a directory written by `harness run`, e.g. reports/<suite>/<run-id>",
            )
        store.manifest()
        return store

    def manifest(self) -> Manifest:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunStoreError(f"{self.manifest_path}:{exc.lineno}: damaged manifest: {exc.msg}") from exc
        return manifest_from_json(data, str(self.manifest_path))

    def write_manifest(self, manifest: Manifest) -> None:
        text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True, allow_nan=False)
        atomic_write_text(self.manifest_path, text + "\n")

    def update_manifest(self, **fields: Any) -> Manifest:
        """Set some manifest fields, validated against the model, and write it back atomically."""
        current = self.manifest().model_dump(mode="json")
        updated = _parse(Manifest, {**current, **fields}, str(self.manifest_path))
        self.write_manifest(updated)
        return updated

    def append(self, record: CaseRecord) -> None:
        """Append one record and flush it to disk before returning."""
        line = case_record_line(record)
        with self.cases_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> Iterator[CaseRecord]:
        """Every complete record. A torn last line (a crash mid-write) is ignored; damage elsewhere is an error."""
        if not self.cases_path.exists():
            return
        lines = self.cases_path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                if number >= len(lines) - 1:  # the last line, written when the process died
                    return
                raise RunStoreError(
                    f"{self.cases_path}:{number}: damaged record: {exc.msg}",
                    hint="remove or repair that line, then resume",
                ) from exc
            yield case_record_from_json(data, f"{self.cases_path}:{number}")

    def completed(self) -> set[tuple[str, str]]:
        return {record.key for record in self.records()}

    def repair_torn_tail(self) -> None:
        """Drop an incomplete last line so appends after a resume start on a fresh line."""
        if not self.cases_path.exists():
            return
        data = self.cases_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(self.cases_path, keep)
