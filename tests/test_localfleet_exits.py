"""How a server died, without llama.cpp: real processes killed by real signals, read back by the fleet's code.

The oracle is the kernel: a process we kill with SIGILL reports -4 to its parent, and Python's faulthandler (which the
servers run with) writes the signal's name to the log. No llama.cpp is needed, so these run everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _wait import eventually

from harness.config.fleet import Fleet, Host
from harness.dispatch import Dispatcher
from harness.fakes import FakeOpenAI, Reply
from harness.localfleet import procs
from harness.localfleet.command import SERVER_MODULE
from harness.localfleet.exits import SIGNALS, describe_exit, describe_returncode, signal_from_log
from harness.localfleet.liveness import ServerLiveness, local_liveness
from harness.localfleet.state import ServerRecord, state_payload, write_state
from harness.providers.types import GenerationRequest

REQUEST = GenerationRequest(prompt="Is drip edge required?", max_tokens=8)
READY = "sleeper running"


def test_sigill_says_what_it_means_and_what_to_do() -> None:
    line = describe_returncode(-signal.SIGILL)
    assert line == ("killed by SIGILL (illegal instruction): this llama.cpp build uses CPU instructions this machine "
                    "cannot run; rebuild with `make rebuild-llama`")
    assert describe_returncode(1) == "exited with code 1: read the log"
    assert describe_returncode(-signal.SIGKILL).startswith("killed by SIGKILL (killed): often the kernel's out-of")
    assert describe_returncode(-200).startswith("killed by signal 200")


def _sleeper(log: Path, port: int) -> subprocess.Popen[bytes]:
    """A real process run the way servers run (``-X faulthandler``, output to a log) whose command line carries the
    markers a server's record checks (``-m llama_cpp.server --port N``, as plain arguments).

    Returned once it runs its code (so faulthandler is installed), which it tells by a line in its log."""
    code = "import threading, time; threading.Thread(target=time.sleep, args=(60,), daemon=True).start(); " \
        f"print({READY!r}, flush=True); time.sleep(60)"
    with log.open("wb") as handle:
        popen = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", code, "-m", SERVER_MODULE,
                                  "--port", str(port)], stdout=handle, stderr=subprocess.STDOUT)
    assert eventually(lambda: READY in log.read_text() or popen.poll() is not None)
    assert popen.poll() is None, log.read_text()
    return popen


def _record(popen: subprocess.Popen[bytes], log: Path, port: int, name: str = "local-1") -> ServerRecord:
    info = procs.proc_info(popen.pid)
    assert info is not None
    return ServerRecord(name=name, pid=popen.pid, port=port, start_time=info.start_time, launched_at="now",
                        log=str(log))


@pytest.mark.parametrize("sig", [sig for sig, info in SIGNALS.items() if info.faulthandler_name])
def test_a_fatal_signal_is_read_back_from_the_log_of_a_process_we_are_not_waiting_for(
    tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "server.log"
    popen = _sleeper(log, 50001)
    os.kill(popen.pid, sig)
    assert popen.wait(timeout=10) == -sig
    assert signal_from_log(log.read_text()) == sig
    # No exit status given (as for a server another process started): the log alone names the signal.
    assert describe_exit(None, log).startswith(f"killed by {sig.name} ({SIGNALS[sig].meaning})")


def test_sigkill_leaves_no_trace_and_the_line_says_so(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    popen = _sleeper(log, 50002)
    os.kill(popen.pid, signal.SIGKILL)
    popen.wait(timeout=10)
    assert signal_from_log(log.read_text()) is None
    assert "exit status unknown" in describe_exit(None, log)
    assert describe_exit(popen.returncode, log).startswith("killed by SIGKILL")


def test_liveness_names_a_dead_server_and_leaves_live_ones_alone(tmp_path: Path) -> None:
    alive_log, dead_log = tmp_path / "a.log", tmp_path / "b.log"
    alive, dead = _sleeper(alive_log, 50003), _sleeper(dead_log, 50004)
    try:
        probe = ServerLiveness({"a": _record(alive, alive_log, 50003, "a"), "b": _record(dead, dead_log, 50004, "b")})
        assert probe("a") is None and probe("b") is None and probe("not-ours") is None
        os.kill(dead.pid, signal.SIGILL)
        dead.wait(timeout=10)
        reason = probe("b")
        assert reason is not None
        assert reason.startswith(f"server exited (pid {dead.pid}: killed by SIGILL (illegal instruction)")
        assert "make rebuild-llama" in reason and str(dead_log) in reason
        assert probe("a") is None
    finally:
        alive.kill()
        alive.wait(timeout=10)


def test_local_liveness_matches_fleet_hosts_to_recorded_servers_by_port(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    popen = _sleeper(log, 50005)
    try:
        write_state(tmp_path, state_payload([_record(popen, log, 50005)], tmp_path / "m.gguf", threads=1, ctx=2048,
                                            batch=512, fleet_file=tmp_path / "fleet.yaml"))
        fleet = Fleet(hosts=[Host(name="renamed", url="http://127.0.0.1:50005", model="m"),
                             Host(name="remote", url="http://10.0.0.9:50005", model="m")])
        probe = local_liveness(fleet, tmp_path / "fleet.yaml")
        assert probe is not None and set(probe.servers) == {"renamed"}
        assert local_liveness(fleet, tmp_path / "elsewhere" / "fleet.yaml") is None  # no state file beside it
    finally:
        popen.kill()
        popen.wait(timeout=10)


async def test_the_dispatcher_skips_a_host_its_probe_calls_down_without_counting_it_against_the_breaker() -> None:
    down = {"b": "server exited (pid 7: killed by SIGILL (illegal instruction): ...)"}
    with FakeOpenAI(script=Reply.ok("yes", latency=0.05)) as a, FakeOpenAI(script=Reply.ok("also")) as b:
        hosts = [Host(name="a", url=a.url, kind="openai", model="m"), Host(name="b", url=b.url, kind="openai",
                                                                             model="m")]
        async with Dispatcher.from_fleet(Fleet(hosts=hosts, strategy="race"), host_probe=down.get) as dispatcher:
            for _ in range(5):  # well past the breaker's 3 failures
                generation = await dispatcher.generate(REQUEST)
                assert generation.host == "a"
                skipped = [attempt for attempt in generation.attempts if attempt.host == "b"]
                assert [(s.outcome, s.error) for s in skipped] == [("skipped", down["b"])]
            assert b.generations == 0  # never sent
            assert dispatcher.health()["b"].failures == 0


async def test_a_request_lost_to_a_dying_host_is_reported_with_the_probe_reason() -> None:
    # The host answers with a dropped connection; by the time the dispatcher records it, the probe knows why.
    with FakeOpenAI(script=Reply("reset")) as a:
        hosts = [Host(name="a", url=a.url, kind="openai", model="m")]
        calls = {"n": 0}

        def probe(host: str) -> str | None:
            calls["n"] += 1
            return None if calls["n"] == 1 else "server exited (pid 9: killed by SIGILL (illegal instruction): ...)"

        async with Dispatcher.from_fleet(Fleet(hosts=hosts, strategy="single"), host_probe=probe) as dispatcher:
            from harness.errors import FleetUnavailable

            with pytest.raises(FleetUnavailable) as caught:
                await dispatcher.generate(REQUEST)
    assert caught.value.reasons == {"a": "server exited (pid 9: killed by SIGILL (illegal instruction): ...)"}
    assert a.requests_to("/v1/chat/completions")  # it was sent, and failed


def test_fleet_status_says_how_an_embedded_server_ended_and_exits_3(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app
    from harness.localfleet.fleetfile import write_fleet_file

    log = tmp_path / "logs" / "local-1.log"
    log.parent.mkdir()
    with socket.socket() as sock:  # a port nothing listens on once the socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    popen = _sleeper(log, port)
    record = _record(popen, log, port)
    fleet_path = write_fleet_file(tmp_path / "fleet.yaml", [("local-1", record.url)], model="gemma3-270m")
    write_state(tmp_path, state_payload([record], tmp_path / "m.gguf", threads=1, ctx=2048, batch=512,
                                        fleet_file=fleet_path))
    os.kill(popen.pid, signal.SIGILL)
    popen.wait(timeout=10)
    result = CliRunner().invoke(app, ["fleet", "status", "--fleet", str(fleet_path), "--json"])
    assert result.exit_code == 3, result.output
    [row] = json.loads(result.stdout)
    assert row["reachable"] is False
    assert row["error"].startswith(f"server exited (pid {popen.pid}: killed by SIGILL (illegal instruction)")


def test_the_first_completion_probe_needs_a_generated_token() -> None:
    from harness.localfleet.readiness import first_completion_error

    def port(url: str) -> int:
        return int(url.rsplit(":", 1)[1])

    with FakeOpenAI(script=Reply.ok("x")) as ok, FakeOpenAI(script=Reply.error(503)) as busy, \
            FakeOpenAI(script=Reply("reset")) as dying:
        assert first_completion_error(port(ok.url), "gemma3-270m", 10) is None
        body = ok.requests_to("/v1/completions")[0].body
        assert body["max_tokens"] == 1 and body["model"] == "gemma3-270m"
        assert first_completion_error(port(busy.url), "gemma3-270m", 10) == "HTTP 503 to a one-token completion"
        failure = first_completion_error(port(dying.url), "gemma3-270m", 10)
        assert failure is not None and failure.startswith("no answer to a one-token completion")
