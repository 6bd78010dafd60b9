"""The run store: ``reports/<suite>/<run-id>/`` is the contract between running and reporting.

- ``manifest.json``: what ran (suite hash, corpus fingerprint, config, versions, git commit) and how it ended;
- ``cases.jsonl``: one record per case × variant, appended and flushed as each finishes, so nothing is lost;
- ``results.parquet`` and the reports: derived from ``cases.jsonl`` and written atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import RunStoreError
from harness.store.grade_log import apply_grades, read_grades
from harness.store.records import SCHEMA_VERSION, CaseRecord, Manifest, ManifestFields
from harness.store.upgrade import UPGRADES

STORE_VERSION = SCHEMA_VERSION
MANIFEST = "manifest.json"
CASES = "cases.jsonl"
RESULTS = "results.parquet"
LOCK = ".lock"
FILE_MODE = 0o644  # run files are read by whoever reads reports, like any report
M = TypeVar("M", bound=BaseModel)
READABLE = f"versions {', '.join(map(str, sorted({*UPGRADES, SCHEMA_VERSION})))}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600
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


class RunLock:
    """An exclusive ``fcntl`` lock on a run directory, held for as long as one process writes the run.

    The lock file holds the holder's PID, so a second writer can be told who holds it. The kernel drops the lock when
    the holder dies, however it dies, so a lock is never stale.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            for _ in range(50):  # the holder writes its PID just after it takes the lock; give it that moment
                if holder is not None:
                    break
                time.sleep(0.01)
                holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise RunStoreError(
                f"run {run_dir} is in use by {who}",
                hint="wait for that run to finish (or stop it), then resume; two writers would duplicate cases",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def lock_holder(run_dir: Path) -> tuple[bool, int | None]:
    """Whether some process holds the run's lock now, and the PID last written to the lock file."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return False, None
    try:
        pid = _read_pid(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, pid
        return False, pid
    finally:
        os.close(fd)


@dataclass
class RunStore:
    """One run directory."""

    path: Path
    lock: RunLock | None = None

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def cases_path(self) -> Path:
        return self.path / CASES

    @classmethod
    def create(cls, path: Path, manifest: Manifest | None = None) -> RunStore:
        """Make a new run directory and lock it. ``mkdir`` is the atomic claim: of two creators, one gets an error."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise RunStoreError(
                f"run directory {path} already exists",
                hint="choose another --run-id, or continue it with --resume",
            ) from None
        store = cls(path, RunLock(path))
        store.write_manifest(manifest or Manifest())
        store.cases_path.touch(mode=FILE_MODE)
        return store

    def acquire(self) -> None:
        """Take the run's exclusive lock (for a resume); raises RunStoreError naming the holder's PID."""
        if self.lock is None:
            self.lock = RunLock(self.path)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def live_status(self, manifest: Manifest) -> str:
        """The manifest's status, except that a run not finished whose lock nobody holds is shown as stale."""
        if manifest.status not in ("running", "created"):
            return manifest.status
        held, pid = lock_holder(self.path)
        if held:
            return manifest.status
        pid = pid or manifest.pid
        return f"stale (pid {pid} is gone)" if pid else "stale (its process is gone)"

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

    def update_manifest(self, changes: ManifestFields) -> Manifest:
        """Apply the fields ``changes`` sets (typed when it was built), validate the whole manifest, write it back
        atomically."""
        current = self.manifest().model_dump(mode="json")
        given = changes.model_dump(mode="json", include=changes.model_fields_set)
        updated = _parse(Manifest, {**current, **given}, str(self.manifest_path))
        self.write_manifest(updated)
        return updated

    def append(self, record: CaseRecord) -> None:
        """Append one record and flush it to disk before returning."""
        line = case_record_line(record)
        with self.cases_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append_many(self, records: Sequence[CaseRecord]) -> None:
        """Append records with one write and one fsync: a block of cases retrieved together is saved together (a
        crash loses at most that block, which a resume retrieves again; a torn last line is repaired on resume)."""
        if not records:
            return
        text = "".join(case_record_line(record) + "\n" for record in records)
        with self.cases_path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> Iterator[CaseRecord]:
        """Every complete record, with its logged grades applied (``harness.store.grade_log``)."""
        return apply_grades(self._answer_records(), read_grades(self.path))

    def _answer_records(self) -> Iterator[CaseRecord]:
        """Every complete record. A torn last line (a crash mid-write) is ignored; damage elsewhere is an error."""
        if not self.cases_path.exists():
            return
        with self.cases_path.open(encoding="utf-8", newline="\n") as handle:  # line by line: a run can be large
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    if not handle.read().strip():  # the last line, written when the process died
                        return
                    raise RunStoreError(
                        f"{self.cases_path}:{number}: damaged record: {exc.msg}",
                        hint="remove or repair that line, then resume",
                    ) from exc
                yield case_record_from_json(data, f"{self.cases_path}:{number}")

    def completed(self) -> set[tuple[str, str]]:
        return {record.key for record in self.records()}

    def repair_torn_tail(self) -> None:
        """Check the whole log before a resume: drop a damaged last line (a crash mid-write), refuse any other damage.

        Done up front, so a resumed run never fails at its end over a line it appended after.
        """
        if not self.cases_path.exists():
            return
        data = self.cases_path.read_bytes()
        lines = data.split(b"\n")
        numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
        for position, (number, line) in enumerate(numbered):
            try:
                data_line = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                if position == len(numbered) - 1:
                    keep = b"\n".join(lines[: number - 1])
                    atomic_write_bytes(self.cases_path, keep + b"\n" if keep else b"")
                    return
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise RunStoreError(
                    f"{self.cases_path}:{number}: damaged record: {reason}",
                    hint="remove or repair that line (the case is then run again), then resume",
                ) from None
            case_record_from_json(data_line, f"{self.cases_path}:{number}")  # a whole line of the wrong shape
        if data and not data.endswith(b"\n"):
            atomic_write_bytes(self.cases_path, data + b"\n")
