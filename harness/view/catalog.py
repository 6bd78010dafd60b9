"""The runs the viewer can open: every run directory under the reports folder, named ``<suite>/<run-id>``.

A run reference arrives in a URL, so both of its names are checked as run ids are (``--run-id``) and the directory
must resolve inside the reports folder (:func:`harness.store.paths.run_dir`). Loaded runs are cached and reloaded
when one of their files changes, so a run still being written (or labelled) is shown as it is now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from harness.errors import InputError
from harness.store.grade_log import GRADES
from harness.store.labels import LABELS
from harness.store.loaded import RunView, load_run
from harness.store.paths import check_run_id, run_dir
from harness.store.store import CASES, MANIFEST

T = TypeVar("T")


class NotFound(InputError):
    """A run or case the URL names does not exist (HTTP 404); other bad input is a 400."""


WATCHED = (MANIFEST, CASES, GRADES, LABELS)


@dataclass(frozen=True, order=True)
class RunRef:
    """A run's address in the viewer: its suite and its run id (the two directory names under the reports folder)."""

    suite: str
    run_id: str

    def __str__(self) -> str:
        return f"{self.suite}/{self.run_id}"


def parse_ref(text: str, option: str = "run") -> RunRef:
    """``suite/run-id`` from a URL, checked; the directory itself is checked by :meth:`Catalog.path`."""
    suite, slash, run_id = text.partition("/")
    if not slash:
        raise InputError(f"{option} {text!r} is not <suite>/<run-id>", hint="open a run from the runs page")
    return RunRef(suite, run_id)


def _stamp(path: Path) -> tuple[float, ...]:
    """When each file a loaded run depends on last changed (0 for an absent file)."""
    out = []
    for name in WATCHED:
        try:
            out.append((path / name).stat().st_mtime_ns)
        except FileNotFoundError:
            out.append(0)
    return tuple(out)


class Cache(Generic[T]):
    """Values derived from one run, rebuilt when the run's files change (one lock: a build is done once)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Path, str], tuple[tuple[float, ...], T]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, name: str, build: Callable[[], T]) -> T:
        stamp = _stamp(path)
        with self._lock:
            hit = self._items.get((path, name))
            if hit is not None and hit[0] == stamp:
                return hit[1]
            value = build()
            self._items[(path, name)] = (stamp, value)
            return value


class Catalog:
    """The reports folder, or (for an export) a fixed list of run directories."""

    def __init__(self, reports_dir: Path, fixed: dict[RunRef, Path] | None = None) -> None:
        self.reports_dir = reports_dir
        self._fixed = fixed
        self._views: Cache[RunView] = Cache()
        self.derived: Cache[object] = Cache()

    @classmethod
    def of_runs(cls, run_dirs: list[Path]) -> Catalog:
        """A catalog of given run directories, each named by its parent (the suite) and its own name."""
        fixed: dict[RunRef, Path] = {}
        for path in run_dirs:
            ref = RunRef(path.resolve().parent.name, path.resolve().name)
            check_run_id(ref.suite, "suite folder")  # the names become folders of the bundle
            check_run_id(ref.run_id, "run folder")
            if not (path / MANIFEST).is_file():
                raise NotFound(f"{path} is not a run directory (no {MANIFEST})",
                               hint="pass directories written by `harness run`, e.g. reports/<suite>/<run-id>")
            if ref in fixed:
                raise InputError(f"two runs are named {ref}: {fixed[ref]} and {path}",
                                 hint="export runs with different suite or run names")
            fixed[ref] = path
        return cls(Path("."), fixed)

    def refs(self) -> list[RunRef]:
        if self._fixed is not None:
            return sorted(self._fixed)
        if not self.reports_dir.is_dir():
            return []
        out = []
        for suite in sorted(self.reports_dir.iterdir()):
            if not suite.is_dir():
                continue
            for run in sorted(suite.iterdir()):
                if (run / MANIFEST).is_file():
                    try:
                        out.append(RunRef(suite.name, run.name))
                        self.path(out[-1])
                    except InputError:  # a name that is not an id, or a symlink out of the folder: not listed
                        out.pop()
        return out

    def path(self, ref: RunRef) -> Path:
        """The run's directory: both names checked like ``--run-id``, and the path kept inside the reports folder."""
        if self._fixed is not None:
            if ref not in self._fixed:
                raise NotFound(f"run {ref} is not in this bundle", hint="open a run from the runs page")
            return self._fixed[ref]
        path = run_dir(self.reports_dir, ref.suite, ref.run_id, option="run")
        if not (path / MANIFEST).is_file():
            raise NotFound(f"no run {ref} under {self.reports_dir}", hint="open a run from the runs page")
        return path

    def view(self, ref: RunRef) -> RunView:
        path = self.path(ref)
        return self._views.get(path, "view", lambda: load_run(path))

    def cached(self, ref: RunRef, name: str, build: Callable[[RunView], T]) -> T:
        """A value derived from a run (its case rows, its report outline), kept until the run changes."""
        view = self.view(ref)
        return self.derived.get(self.path(ref), name, lambda: build(view))  # type: ignore[return-value]
