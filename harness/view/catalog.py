"""The runs the viewer can open: every run directory under the reports folder, named ``<suite>/<run-id>``.

A run reference arrives in a URL, so both of its names are checked as run ids are (``--run-id``) and the directory
must resolve inside the reports folder (:func:`harness.store.paths.run_dir`). Loaded runs are cached and reloaded
when one of their files changes, so a run still being written (or labelled) is shown as it is now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from harness.errors import InputError
from harness.store.claims_log import CLAIMS, ClaimsKey, ClaimsRecord, read_claims
from harness.store.grade_log import GRADES, GradeKey, read_second_judges
from harness.store.labels import LABELS
from harness.store.loaded import RunView, load_run
from harness.store.paths import check_run_id, run_dir
from harness.store.records import GradeRecord, Manifest
from harness.store.scan import file_stamp
from harness.store.store import CASES, MANIFEST, RunStore
from harness.view.row_index import load_rows
from harness.view.rows import CaseRows

T = TypeVar("T")


class NotFound(InputError):
    """A run or case the URL names does not exist (HTTP 404); other bad input is a 400."""


WATCHED = (MANIFEST, CASES, GRADES, LABELS)
ROW_FILES = (MANIFEST, CASES, GRADES)  # what the cases table is built from (labels and claims are not in it)
CLAIM_FILES = (CLAIMS,)


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


def _stamp(path: Path, files: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """(size, mtime, inode) of each file a derived value depends on (zeros for an absent file)."""
    return tuple(file_stamp(path / name) for name in files)


class Cache(Generic[T]):
    """Values derived from one run, rebuilt when the files they depend on change.

    Each value is a future: the first request builds it (or starts it in the background), later requests for the
    same value wait on that future, and requests for other values or other runs never wait: the lock is held only
    to look up or file a future, never while building.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[Path, str], tuple[tuple[tuple[int, int, int], ...], Future[T]]] = {}
        self._lock = threading.Lock()

    def future(self, path: Path, name: str, build: Callable[[], T], files: tuple[str, ...] = WATCHED, *,
               background: bool = False) -> Future[T]:
        stamp = _stamp(path, files)
        with self._lock:
            hit = self._items.get((path, name))
            if hit is not None and hit[0] == stamp:
                return hit[1]
            future: Future[T] = Future()
            future.set_running_or_notify_cancel()
            self._items[(path, name)] = (stamp, future)

        def fill() -> None:
            try:
                future.set_result(build())
            except BaseException as exc:  # handed to every waiter, who shows it as the page's error
                future.set_exception(exc)

        if background:
            threading.Thread(target=fill, name=f"build {name} of {path.name}", daemon=True).start()
        else:
            fill()
        return future

    def get(self, path: Path, name: str, build: Callable[[], T], files: tuple[str, ...] = WATCHED) -> T:
        return self.future(path, name, build, files).result()

    def ready(self, path: Path, name: str, files: tuple[str, ...] = WATCHED) -> T | None:
        """The value if it is built and still fresh, without building it."""
        stamp = _stamp(path, files)
        with self._lock:
            hit = self._items.get((path, name))
        if hit is None or hit[0] != stamp or not hit[1].done() or hit[1].exception() is not None:
            return None
        return hit[1].result()


class Catalog:
    """The reports folder, or (for an export) a fixed list of run directories."""

    def __init__(self, reports_dir: Path, fixed: dict[RunRef, Path] | None = None, *,
                 write_index: bool = False) -> None:
        self.reports_dir = reports_dir
        self._fixed = fixed
        self.write_index = write_index  # keep each run's cases table on disk beside it (row_index)
        self._views: Cache[RunView] = Cache()
        self._rows: Cache[CaseRows] = Cache()
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
        """A value derived from a whole loaded run (its report outline), kept until the run changes."""
        view = self.view(ref)
        return self.derived.get(self.path(ref), name, lambda: build(view))  # type: ignore[return-value]

    def derived_future(self, ref: RunRef, name: str, build: Callable[[RunView], T], *,
                       background: bool = False) -> Future[T]:
        """Like :meth:`cached`, as a future; ``background`` loads the run and builds in a thread of its own."""
        path = self.path(ref)
        future = self.derived.future(path, name, lambda: build(self.view(ref)), WATCHED, background=background)
        return future  # type: ignore[return-value]

    def kept(self, ref: RunRef, name: str, build: Callable[[Path], T], files: tuple[str, ...]) -> T:
        """A value derived from some of a run's files (not the whole loaded run), kept until those files change."""
        path = self.path(ref)
        return self.derived.get(path, name, lambda: build(path), files)  # type: ignore[return-value]

    def manifest(self, ref: RunRef) -> Manifest:
        """The run's manifest alone (what the runs page and a case page need), read once per change."""
        return self.kept(ref, "manifest", lambda path: RunStore.open(path).manifest(), (MANIFEST,))

    def rows_future(self, ref: RunRef) -> Future[CaseRows]:
        """The run's cases table, built in the background: from the on-disk index when it is fresh, else from the
        run's lines. The caller waits on it as long as it likes."""
        path = self.path(ref)
        write = self.write_index
        return self._rows.future(path, "rows", lambda: load_rows(path, self.manifest(ref), write=write), ROW_FILES,
                                 background=True)

    def rows(self, ref: RunRef) -> CaseRows:
        return self.rows_future(ref).result()

    def rows_ready(self, ref: RunRef) -> CaseRows | None:
        return self._rows.ready(self.path(ref), "rows", ROW_FILES)

    def claims(self, ref: RunRef) -> dict[ClaimsKey, ClaimsRecord]:
        return self.kept(ref, "claims", read_claims, CLAIM_FILES)

    def second_judges(self, ref: RunRef) -> dict[str, dict[GradeKey, GradeRecord]]:
        return self.kept(ref, "second_judges", read_second_judges, (GRADES,))
