"""What an interrupted run leaves behind: a manifest that says so and how to resume, and a report of what exists."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.store.records import ManifestFields
from harness.store.store import RunStore


def record_interrupt(store: RunStore, signum: int, write_reports: Callable[[Path], Any]) -> str:
    """Mark the run interrupted (first, so it is on disk at once), then write the report of the records so far.

    Returns:
        The hint to show: the command that resumes the run, and whether the partial report was written.
    """
    resume_with = store.manifest().resume_with or f"harness run SUITE --resume {store.path.name}"
    store.update_manifest(
        ManifestFields(
            status="interrupted",
            interrupted_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            interrupted_by=signal.Signals(signum).name,
            records_written=len(store.completed()),
            resume_with=resume_with,
        )
    )
    try:
        write_reports(store.path)
        report = f"the report of the {len(store.completed())} finished record(s) is in {store.path}"
    except Exception as exc:  # a partial report is a courtesy; the interrupt itself must still be reported
        reason = exc.message if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
        report = f"no partial report ({reason})"
    return f"continue with: {resume_with}\n  {report}"
