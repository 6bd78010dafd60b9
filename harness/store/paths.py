"""Where a run lives: ``<reports>/<suite>/<run-id>``, with both names anchored identifiers and the path kept inside.

A suite name or run id comes from a file or the command line; either could otherwise point the run anywhere
(``../../x``, ``/tmp/x``, or a symlink planted under the reports directory).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.config.suite import PATH_ID_PATTERN
from harness.errors import InputError

_ID = re.compile(PATH_ID_PATTERN)


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    """Return ``run_id`` if it is an identifier that can name a directory, else raise InputError naming ``option``."""
    if not _ID.fullmatch(run_id):
        raise InputError(
            f"{option} {run_id!r} is not a valid run id",
            hint="use 1-100 letters, digits, `-` or `_`, starting with a letter or digit (no `/`, `.` or spaces)",
        )
    return run_id


def run_dir(reports_dir: Path, suite_name: str, run_id: str, option: str = "--run-id") -> Path:
    """The run directory, checked to resolve (symlinks followed) inside ``reports_dir``."""
    check_run_id(run_id, option)
    if not _ID.fullmatch(suite_name):
        raise InputError(f"suite name {suite_name!r} cannot name a directory", hint="use letters, digits, `-`, `_`")
    root = reports_dir.resolve()
    target = (reports_dir / suite_name / run_id).resolve()
    if not target.is_relative_to(root) or target == root:
        raise InputError(
            f"run directory {reports_dir / suite_name / run_id} resolves to {target}, outside {root}",
            hint=f"remove the symlink under {reports_dir}, or pass another --reports directory",
        )
    return reports_dir / suite_name / run_id
