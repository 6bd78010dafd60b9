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
from typing import Any

from harness.errors import RunStoreError

STORE_VERSION = 1
MANIFEST = "manifest.json"
CASES = "cases.jsonl"
RESULTS = "results.parquet"


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


def record_key(record: dict[str, Any]) -> tuple[str, str]:
    return (record["case_id"], record["variant"])


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
    def create(cls, path: Path, manifest: dict[str, Any]) -> RunStore:
        if (path / MANIFEST).exists():
            raise RunStoreError(
                f"run directory {path} already exists",
                hint="choose another --run-id, or continue it with --resume",
            )
        store = cls(path)
        store.write_manifest({"version": STORE_VERSION, **manifest})
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
        version = store.manifest().get("version")
        if version != STORE_VERSION:
            raise RunStoreError(
                f"{store.manifest_path}: run store version {version!r}, expected {STORE_VERSION}",
                hint="re-run the suite with this version of the harness",
            )
        return store

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except json.JSONDecodeError as exc:
            raise RunStoreError(f"{self.manifest_path}:{exc.lineno}: damaged manifest: {exc.msg}") from exc

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")

    def update_manifest(self, **fields: Any) -> None:
        manifest = self.manifest()
        manifest.update(fields)
        self.write_manifest(manifest)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to disk before returning."""
        line = json.dumps(record, sort_keys=True, default=str, allow_nan=False)
        with self.cases_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record. A torn last line (a crash mid-write) is ignored; damage elsewhere is an error."""
        if not self.cases_path.exists():
            return
        lines = self.cases_path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if number >= len(lines) - 1:  # the last line, written when the process died
                    return
                raise RunStoreError(
                    f"{self.cases_path}:{number}: damaged record: {exc.msg}",
                    hint="remove or repair that line, then resume",
                ) from exc

    def completed(self) -> set[tuple[str, str]]:
        return {record_key(r) for r in self.records()}

    def repair_torn_tail(self) -> None:
        """Drop an incomplete last line so appends after a resume start on a fresh line."""
        if not self.cases_path.exists():
            return
        data = self.cases_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(self.cases_path, keep)
