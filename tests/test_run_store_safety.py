"""The run store under concurrency and damage: one writer per run, atomic creation, contained paths, readable files.

The races use real processes (the lock is an ``fcntl`` lock, which is per process), started together on a barrier.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import stat
from pathlib import Path

import pytest

from harness.errors import InputError, RunStoreError
from harness.store.paths import check_run_id, run_dir
from harness.store.records import Manifest, ManifestFields
from harness.store.store import RunStore, lock_holder

CTX = mp.get_context("fork")  # separate processes (flock is per open file), cheap enough to race 20 times
TRIALS = 20


def _create(path: str, barrier: mp.synchronize.Barrier, results: mp.Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()
    try:
        RunStore.create(Path(path), Manifest(run_id="r"))
    except RunStoreError as exc:
        results.put(("refused", exc.message))
        return
    results.put(("created", ""))


def _resume(path: str, barrier: mp.synchronize.Barrier, results: mp.Queue) -> None:  # type: ignore[type-arg]
    store = RunStore.open(Path(path))
    barrier.wait()
    try:
        store.acquire()
    except RunStoreError as exc:
        results.put(("refused", exc.message))
        barrier.wait()
        return
    results.put(("locked", str(os.getpid())))
    barrier.wait()  # keep holding until the other one has tried
    store.release()


def _race(target: object, path: Path) -> list[tuple[str, str]]:
    barrier = CTX.Barrier(2)
    results = CTX.Queue()
    procs = [CTX.Process(target=target, args=(str(path), barrier, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    return sorted(outcomes)


def test_two_creators_at_once_exactly_one_wins(tmp_path: Path) -> None:
    for trial in range(TRIALS):
        path = tmp_path / "suite" / f"run{trial}"
        outcomes = _race(_create, path)
        assert [kind for kind, _ in outcomes] == ["created", "refused"], outcomes
        assert "already exists" in outcomes[1][1]
        assert RunStore.open(path).manifest().run_id == "r"


def test_two_resumers_at_once_exactly_one_writes(tmp_path: Path) -> None:
    path = tmp_path / "suite" / "run"
    RunStore.create(path, Manifest(run_id="run")).release()
    for _ in range(TRIALS):
        outcomes = _race(_resume, path)
        kinds = [kind for kind, _ in outcomes]
        assert kinds == ["locked", "refused"], outcomes
        holder = outcomes[0][1]
        assert f"in use by pid {holder}" in outcomes[1][1]  # the refusal names the holder
    assert lock_holder(path) == (False, int(holder))


def test_a_resumer_in_the_same_process_is_refused_while_the_creator_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "suite" / "run"
    creator = RunStore.create(path, Manifest(run_id="run"))
    assert lock_holder(path) == (True, os.getpid())
    with pytest.raises(RunStoreError, match=f"in use by pid {os.getpid()}"):
        RunStore.open(path).acquire()
    creator.release()
    again = RunStore.open(path)
    again.acquire()
    again.release()


def test_a_running_manifest_without_a_holder_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "suite" / "run"
    store = RunStore.create(path, Manifest(run_id="run", pid=os.getpid()))
    store.update_manifest(ManifestFields(status="running"))
    assert store.live_status(store.manifest()) == "running"
    store.release()
    (path / ".lock").write_text("999999\n")  # the PID a dead writer left
    assert store.live_status(store.manifest()) == "stale (pid 999999 is gone)"
    store.update_manifest(ManifestFields(status="complete"))
    assert store.live_status(store.manifest()) == "complete"


def test_run_files_are_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = RunStore.create(tmp_path / "suite" / "run", Manifest(run_id="run"))
        store.update_manifest(ManifestFields(status="running"))
    finally:
        os.umask(old)
    for name in ("manifest.json", "cases.jsonl", ".lock"):
        assert stat.S_IMODE((store.path / name).stat().st_mode) == 0o644, name
    store.release()


def _record(case_id: str) -> str:
    from harness.store.records import CaseRecord, RetrievalRecord
    from harness.store.store import case_record_line

    record = CaseRecord(case_id=case_id, variant="dense", category="c", question="q",
                        retrieval=RetrievalRecord(ranked=[("d", 1.0)], metrics={"mrr": 1.0}))
    return case_record_line(record)


@pytest.mark.parametrize("tail", ['{"case_id": "c3", "vari', '{"case_id": "c3", "vari\n', "\x00\x00\x00\n"])
def test_a_damaged_last_line_is_repaired_up_front(tmp_path: Path, tail: str) -> None:
    store = RunStore.create(tmp_path / "suite" / "run", Manifest(run_id="run"))
    store.cases_path.write_text(_record("c1") + "\n" + _record("c2") + "\n" + tail, encoding="utf-8")
    store.repair_torn_tail()
    assert store.cases_path.read_text(encoding="utf-8") == _record("c1") + "\n" + _record("c2") + "\n"
    assert store.completed() == {("c1", "dense"), ("c2", "dense")}
    store.release()


def test_damage_before_the_last_line_is_refused_up_front(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "suite" / "run", Manifest(run_id="run"))
    text = _record("c1") + "\n" + "{broken\n" + _record("c2") + "\n"
    store.cases_path.write_text(text, encoding="utf-8")
    with pytest.raises(RunStoreError, match=r"cases.jsonl:2: damaged record"):
        store.repair_torn_tail()
    assert store.cases_path.read_text(encoding="utf-8") == text  # nothing was dropped
    wrong_shape = _record("c1") + "\n" + json.dumps({"case_id": "x"}) + "\n"
    store.cases_path.write_text(wrong_shape, encoding="utf-8")
    with pytest.raises(RunStoreError, match=r"cases.jsonl:2: "):
        store.repair_torn_tail()
    store.release()


@pytest.mark.parametrize("run_id", ["../../../tmp/x", "/tmp/x", "..", ".", "a/b", "a b", "", "x" * 101, "-x"])
def test_run_ids_must_be_identifiers(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(InputError, match="not a valid run id"):
        run_dir(tmp_path / "reports", "mini", run_id)
    assert not (tmp_path / "tmp").exists()


def test_a_symlink_out_of_the_reports_directory_is_refused(tmp_path: Path) -> None:
    reports, outside = tmp_path / "reports", tmp_path / "outside"
    reports.mkdir()
    outside.mkdir()
    (reports / "mini").symlink_to(outside)
    with pytest.raises(InputError, match="outside"):
        run_dir(reports, "mini", "r1")
    assert run_dir(reports, "other", "r1") == reports / "other" / "r1"
    assert check_run_id("20261130T010203Z") == "20261130T010203Z"


@pytest.mark.parametrize(("option", "run_id"), [("--run-id", "../../../tmp/x"), ("--run-id", "/tmp/x"),
                                                ("--resume", "../x")])
def test_the_cli_refuses_a_traversal_run_id_and_writes_nothing(tmp_path: Path, option: str, run_id: str) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ncases:\n  - {id: q, question: 'what?', category: c}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "run", str(suite), option, run_id, "--reports", str(tmp_path / "r")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and f"{option} '{run_id}' is not a valid run id" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()
