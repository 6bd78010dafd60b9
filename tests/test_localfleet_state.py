"""Local fleet state handling without model servers: PID identity, stale state, and never killing a stranger.

Real processes stand in for servers: ``sleep`` (a foreign process) and a Python sleeper whose command line carries the
same markers as a llama.cpp server's, to show that the start time, not the command line alone, decides.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config.fleet import load_fleet
from harness.errors import InputError, LocalFleetError
from harness.localfleet import procs
from harness.localfleet.fleetfile import STREAM, write_fleet_file
from harness.localfleet.servers import start_local_fleet, stop_local_fleet
from harness.localfleet.state import FLEET_FILE, STATE_FILE, STATE_VERSION, read_state, running_fleet
from harness.money.costs import local_call_cost


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A foreign process: ``sleep 60``."""
    proc = subprocess.Popen(["sleep", "60"])
    _wait_for_cmdline(proc.pid)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def lookalike() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process whose command line looks like one of our servers on a given port."""
    port = 45123
    code = "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "-m", "llama_cpp.server", "--port", str(port)])
    _wait_for_cmdline(proc.pid)
    yield proc, port
    proc.kill()
    proc.wait()


def _wait_for_cmdline(pid: int) -> None:
    # The kernel fills in the command line a moment after exec() has returned to the parent.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        info = procs.proc_info(pid)
        if info is not None and info.cmdline:
            return
        time.sleep(0.01)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_state(state_dir: Path, servers: list[dict[str, object]]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    payload = {"version": STATE_VERSION, "model_path": "/nonexistent.gguf", "model_alias": "gemma3-270m",
               "threads": 1, "ctx": 2048, "batch": 512, "fleet_file": str(state_dir / FLEET_FILE),
               "servers": servers}
    (state_dir / STATE_FILE).write_text(json.dumps(payload))
    write_fleet_file(state_dir / FLEET_FILE, [(str(s["name"]), f"http://127.0.0.1:{s['port']}") for s in servers],
                     model="gemma3-270m")


def _server(name: str, pid: int, port: int, start_time: float) -> dict[str, object]:
    return {"name": name, "pid": pid, "port": port, "start_time": start_time, "launched_at": "2024-01-01T00:00:00",
            "log": "/nonexistent.log", "ready_s": 1.0}


def test_start_time_matches_the_clock_at_spawn() -> None:
    before = time.time()
    proc = subprocess.Popen(["sleep", "5"])
    after = time.time()
    try:
        info = procs.proc_info(proc.pid)
        assert info is not None and not info.zombie
        assert before - procs.START_TIME_TOLERANCE_S <= info.start_time <= after + procs.START_TIME_TOLERANCE_S
        _wait_for_cmdline(proc.pid)
        info = procs.proc_info(proc.pid)
        assert info is not None and info.cmdline == ("sleep", "5")
    finally:
        proc.kill()
        proc.wait()
    assert procs.proc_info(proc.pid) is None


def test_an_exited_unreaped_child_counts_as_gone() -> None:
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait for it to exit, without reaping it
        info = procs.proc_info(proc.pid)
        if info is None or info.zombie:
            break
        time.sleep(0.02)
    assert not procs.is_running(proc.pid)
    proc.wait()


def test_down_skips_dead_pids_and_removes_the_state(tmp_path: Path) -> None:
    _write_state(tmp_path, [_server("local-1", _dead_pid(), 45001, time.time())])
    report = stop_local_fleet(tmp_path)
    assert len(report.already_gone) == 1 and report.stopped == () and report.not_ours == ()
    assert not (tmp_path / STATE_FILE).exists() and not (tmp_path / FLEET_FILE).exists()
    assert stop_local_fleet(tmp_path).stopped == ()  # idempotent


def test_down_never_kills_a_foreign_process_holding_a_recorded_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    info = procs.proc_info(sleeper.pid)
    assert info is not None
    # Even with the right start time, `sleep` is not a llama.cpp server on that port.
    _write_state(tmp_path, [_server("local-1", sleeper.pid, 45002, info.start_time),
                            _server("local-2", _dead_pid(), 45003, time.time())])
    report = stop_local_fleet(tmp_path, grace_s=0.5)
    assert report.not_ours == (sleeper.pid,) and report.stopped == ()
    assert sleeper.poll() is None and procs.is_running(sleeper.pid)
    assert not (tmp_path / STATE_FILE).exists()


def test_a_reused_pid_with_a_lookalike_command_line_is_left_alone(
    tmp_path: Path, lookalike: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = lookalike
    info = procs.proc_info(proc.pid)
    assert info is not None
    # The state file says the server started 100 s before this process did: the PID was reused.
    _write_state(tmp_path, [_server("local-1", proc.pid, port, info.start_time - 100.0)])
    assert running_fleet(tmp_path) == []
    report = stop_local_fleet(tmp_path, grace_s=0.5)
    assert report.not_ours == (proc.pid,)
    assert proc.poll() is None


def test_the_port_must_match_as_a_whole_argument(
    tmp_path: Path, lookalike: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = lookalike
    info = procs.proc_info(proc.pid)
    assert info is not None
    # "--port 4512" is a prefix of the lookalike's "--port 45123": not the same server.
    _write_state(tmp_path, [_server("local-1", proc.pid, port // 10, info.start_time)])
    assert running_fleet(tmp_path) == []
    assert stop_local_fleet(tmp_path, grace_s=0.5).not_ours == (proc.pid,)
    assert proc.poll() is None


def test_a_recorded_process_that_is_still_ours_is_stopped(
    tmp_path: Path, lookalike: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = lookalike
    info = procs.proc_info(proc.pid)
    assert info is not None
    _write_state(tmp_path, [_server("local-1", proc.pid, port, info.start_time)])
    assert [r.pid for r in running_fleet(tmp_path)] == [proc.pid]
    report = stop_local_fleet(tmp_path, grace_s=2.0)
    assert report.stopped == (proc.pid,)
    assert proc.wait(timeout=5) is not None
    assert not procs.is_running(proc.pid)


def test_up_refuses_to_start_over_a_live_fleet(
    tmp_path: Path, lookalike: tuple[subprocess.Popen[bytes], int]
) -> None:
    pytest.importorskip("llama_cpp")
    proc, port = lookalike
    info = procs.proc_info(proc.pid)
    assert info is not None
    _write_state(tmp_path, [_server("local-1", proc.pid, port, info.start_time)])
    with pytest.raises(LocalFleetError) as caught:
        start_local_fleet(1, state_dir=tmp_path).stop()  # stop() only runs if the refusal failed
    assert "already running" in caught.value.message and "fleet down" in caught.value.hint
    assert proc.poll() is None and (tmp_path / STATE_FILE).exists()


def test_a_taken_base_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LocalFleetError, match=f"port {port}"):
            start_local_fleet(1, state_dir=tmp_path, base_port=port).stop()
    assert read_state(tmp_path) is None


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    for kwargs in ({"n": 0}, {"n": 1, "threads": 0}, {"n": 1, "ctx": 64}, {"n": 1, "base_port": 80}):
        with pytest.raises(InputError):
            start_local_fleet(state_dir=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_an_unreadable_state_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(LocalFleetError) as caught:
        stop_local_fleet(tmp_path)
    assert STATE_FILE in caught.value.message and caught.value.hint
    (tmp_path / STATE_FILE).write_text(json.dumps({"version": 99}))
    with pytest.raises(LocalFleetError, match="version"):
        read_state(tmp_path)


def test_down_without_state_is_a_no_op(tmp_path: Path) -> None:
    assert stop_local_fleet(tmp_path / "never-created").stopped == ()
    assert stop_local_fleet(tmp_path).stopped == ()


def test_the_fleet_file_is_a_valid_race_fleet_with_a_cost_model(tmp_path: Path) -> None:
    path = write_fleet_file(tmp_path / FLEET_FILE, [("local-1", "http://127.0.0.1:45010"),
                                                   ("local-2", "http://127.0.0.1:45011")], model="gemma3-270m")
    fleet = load_fleet(path)
    assert fleet.strategy == "race" and fleet.fallback == "none"
    assert [h.name for h in fleet.hosts] == ["local-1", "local-2"]
    for host in fleet.hosts:
        assert (host.kind, host.endpoint, host.model, host.max_concurrency) == ("openai", "completion",
                                                                               "gemma3-270m", 1)
        # one hour of one busy core: 15 W x $0.17/kWh + $0.04 of hardware
        assert local_call_cost(host.cost, 3600).total_usd == pytest.approx(0.015 * 0.17 + 0.04)
    assert "#" in path.read_text()  # the figures are explained in comments


@pytest.mark.parametrize("stream", [True, False])
def test_the_fleet_file_says_whether_answers_are_streamed(tmp_path: Path, stream: bool) -> None:
    path = write_fleet_file(tmp_path / FLEET_FILE, [("local-1", "http://127.0.0.1:45010")], model="gemma3-270m",
                            stream=stream)
    assert [host.stream for host in load_fleet(path).hosts] == [stream]
    assert f"stream: {str(stream).lower()} " in path.read_text()


def test_the_fleet_file_does_not_stream_by_default(tmp_path: Path) -> None:
    path = write_fleet_file(tmp_path / FLEET_FILE, [("local-1", "http://127.0.0.1:45010")], model="gemma3-270m")
    assert STREAM is False and [host.stream for host in load_fleet(path).hosts] == [False]
