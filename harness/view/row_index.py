"""The cases table kept on disk beside its run (``.view-rows.parquet``), so a viewer started again opens a big run
at once instead of parsing every record again.

The file is derived, never the truth: it carries the size, mtime and inode of ``cases.jsonl`` and ``grades.jsonl``
(and the manifest's) it was built from, plus a format number, and is used only while all of them still match; a
run that grew, was regraded or rewritten is parsed again and the file replaced. It is written atomically (temp file
and rename), so a reader never sees half of one, and only when the viewer may write (not with ``--read-only``);
a run folder the viewer cannot write to simply goes without (the cache is an optimisation).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.store.grade_log import GRADES
from harness.store.records import Manifest
from harness.store.scan import file_stamp
from harness.store.store import CASES, MANIFEST, atomic_write_bytes
from harness.view.figures import Figure
from harness.view.rows import ROW_COLUMNS, CaseRows, RowPlan, case_rows_at, finish_frame, with_facets

INDEX = ".view-rows.parquet"
FORMAT = 1
META_KEY = b"harness_view"
SOURCES = (CASES, GRADES, MANIFEST)
log = logging.getLogger(__name__)


def stamp(run_dir: Path) -> list[list[int]]:
    """What the index is keyed by: (size, mtime ns, inode) of each file the rows are built from."""
    return [list(file_stamp(run_dir / name)) for name in SOURCES]


def load_index(run_dir: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The rows and their metadata from a fresh index, or None when there is none or it is stale or unreadable."""
    path = run_dir / INDEX
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    except (OSError, ValueError, pa.ArrowException):
        return None
    if meta.get("format") != FORMAT or meta.get("stamp") != stamp(run_dir) or table.column_names != ROW_COLUMNS:
        return None
    return finish_frame(table.to_pandas()), meta


def save_index(run_dir: Path, frame: pd.DataFrame, built_from: list[list[int]], extra: dict[str, Any]) -> bool:
    """Write the index atomically; False (and a log line) when the folder cannot be written.

    ``built_from`` is the stamp taken before the rows were read, so rows read while the run grew are never filed
    under the newer stamp.
    """
    table = pa.Table.from_pandas(frame[ROW_COLUMNS], preserve_index=False)
    meta = {**(table.schema.metadata or {}),
            META_KEY: json.dumps({"format": FORMAT, "stamp": built_from, **extra}).encode()}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buffer, compression="zstd")
    try:
        atomic_write_bytes(run_dir / INDEX, buffer.getvalue())
    except OSError as exc:
        log.info("not keeping the cases index of %s: %s", run_dir, exc)
        return False
    return True


def index_metadata(run_dir: Path) -> dict[str, Any] | None:
    """The metadata of a fresh index (its run summary's figures), read without reading its rows."""
    path = run_dir / INDEX
    if not path.is_file():
        return None
    try:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))
    except (OSError, ValueError, pa.ArrowException):
        return None
    return meta if meta.get("format") == FORMAT and meta.get("stamp") == stamp(run_dir) else None


def load_rows(run_dir: Path, manifest: Manifest, *, write: bool) -> CaseRows:
    """The run's rows: from a fresh on-disk index, else parsed from its lines (and, when ``write``, filed)."""
    built_from = stamp(run_dir)
    found = load_index(run_dir)
    if found is not None:
        return with_facets(found[0], RowPlan.of(manifest), manifest, source="index")
    rows = case_rows_at(run_dir, manifest)
    if write and stamp(run_dir) == built_from:  # a run that changed while it was read is read again next time
        save_index(run_dir, rows.frame, built_from, {"figures": [asdict(figure) for figure in rows.figures]})
    return rows


def indexed_figures(run_dir: Path) -> list[Figure] | None:
    """The headline figures filed with a fresh index, or None."""
    meta = index_metadata(run_dir)
    if meta is None:
        return None
    try:
        return [Figure(**figure) for figure in meta.get("figures", [])]
    except TypeError:
        return None
