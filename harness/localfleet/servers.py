"""Start and stop the embedded local fleet: N real llama.cpp servers serving the bundled model on loopback ports.

``start_local_fleet`` launches ``python -m llama_cpp.server`` processes, waits until each is ready (it lists the model
and has answered a one-token completion, see :mod:`harness.localfleet.readiness`), records them in the state file
(``<state_dir>/localfleet.json``, see :mod:`harness.localfleet.state`) and writes ``<state_dir>/fleet.yaml`` pointing
at them.
``stop_local_fleet`` stops exactly the processes recorded there, after checking each PID still names the process we
started (start time and command line), so a PID reused by another program after a crash is never signalled.

The servers run in their own session, so they outlive the ``harness fleet up`` command that started them and ignore a
Ctrl-C meant for the shell.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import InputError, LocalFleetError
from harness.localfleet import procs
from harness.localfleet.command import check_server_installed, child_env, server_command
from harness.localfleet.fleetfile import STREAM, write_fleet_file
from harness.localfleet.liveness import remember_child
from harness.localfleet.model import MODEL_ALIAS, bundled_gguf
from harness.localfleet.readiness import wait_until_ready
from harness.localfleet.state import (
    FLEET_FILE,
    ServerRecord,
    clear_stale_state,
    locked,
    read_state,
    remove_state,
    server_records,
    state_path,
    state_payload,
    write_state,
)


@dataclass
class LocalFleet:
    """A running embedded fleet. Use as a context manager to stop it on exit."""

    state_dir: Path
    servers: tuple[ServerRecord, ...]
    model_path: Path
    model_alias: str
    fleet_path: Path
    threads: int
    ctx: int
    _popens: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    def stop(self, *, grace_s: float = 5.0) -> StopReport:
        report = stop_local_fleet(self.state_dir, grace_s=grace_s)
        for popen in self._popens.values():  # reap our own children so no zombie is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=1.0)
        return report

    def __enter__(self) -> LocalFleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class StopReport:
    """What ``stop_local_fleet`` did."""

    stopped: tuple[int, ...] = ()  # PIDs we signalled and saw exit
    already_gone: tuple[int, ...] = ()  # recorded PIDs with no process (crashed, or stopped elsewhere)
    not_ours: tuple[int, ...] = ()  # recorded PIDs now naming another process: left alone
    failed: tuple[int, ...] = ()  # ours, but still running after SIGKILL


# --------------------------------------------------------------------------------------------------------------------
# Starting


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(taken: set[int]) -> int:
    """A port the kernel calls free now, not one we already handed out (the kernel may offer a just-closed one)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def _launch(name: str, model_path: Path, port: int, log_path: Path, *, threads: int, ctx: int,
            batch: int) -> tuple[subprocess.Popen[bytes], ServerRecord]:
    command = server_command(model_path, port, threads=threads, ctx=ctx, batch=batch)
    with log_path.open("wb") as log:
        try:
            popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=child_env(), start_new_session=True, close_fds=True)
        except OSError as exc:
            raise LocalFleetError(f"could not launch {name}: {exc}", hint="check the Python interpreter") from exc
    remember_child(popen)
    info = procs.proc_info(popen.pid)
    # The process can only be gone already if it failed at once; its start time is then irrelevant.
    start_time = info.start_time if info is not None else time.time()
    launched_at = datetime.now(UTC).isoformat(timespec="seconds")
    record = ServerRecord(name=name, pid=popen.pid, port=port, start_time=start_time, launched_at=launched_at,
                          log=str(log_path))
    return popen, record


def start_local_fleet(
    n: int,
    *,
    state_dir: Path = Path(".harness"),
    base_port: int | None = None,
    threads: int = 1,
    ctx: int = 2048,
    batch: int = 512,
    startup_timeout_s: float = 120.0,
    model_path: Path | None = None,
    stream: bool = STREAM,
) -> LocalFleet:
    """Start ``n`` llama.cpp servers on loopback and wait until all are healthy.

    Args:
        n: number of servers.
        state_dir: where the state file, the fleet file and ``logs/`` go.
        base_port: first port (then ``base_port + 1`` ...); ``None`` picks free ephemeral ports.
        threads: CPU threads per server (generation and prompt processing).
        ctx: context window per server, in tokens.
        batch: prompt-processing batch size.
        startup_timeout_s: how long all servers together may take to become healthy.
        model_path: a GGUF to serve; default: the bundled Gemma 3 270M.
        stream: write ``stream: true`` into the fleet file, so race losers stop at once (see ``fleetfile.STREAM``).

    Returns:
        The running fleet. Its ``fleet_path`` is ready for ``harness run --fleet``.

    Raises:
        InputError: a bad argument.
        LocalFleetError: a fleet is already running in ``state_dir``, a port is taken, or a server died or never
            became healthy (the message carries the tail of its log). Servers already started are stopped.
    """
    if n < 1:
        raise InputError(f"n={n}: need at least one server", hint="pass n >= 1")
    if threads < 1:
        raise InputError(f"threads={threads}: need at least one thread", hint="pass threads >= 1")
    if ctx < 256:
        raise InputError(f"ctx={ctx}: too small for a RAG prompt", hint="pass ctx >= 256 (2048 is the default)")
    if base_port is not None and not 1024 <= base_port <= 65535 - n:
        raise InputError(f"base_port={base_port}: out of range", hint=f"pick a port in 1024..{65535 - n}")
    check_server_installed()
    state_dir = Path(state_dir)
    gguf = Path(model_path) if model_path is not None else bundled_gguf()
    logs = state_dir / "logs"

    with locked(state_dir):
        clear_stale_state(state_dir)
        logs.mkdir(parents=True, exist_ok=True)
        popens: dict[int, subprocess.Popen[bytes]] = {}
        records: list[ServerRecord] = []

        def launch(name: str, port: int) -> ServerRecord:
            popen, record = _launch(name, gguf, port, logs / f"{name}.log", threads=threads, ctx=ctx, batch=batch)
            popens[record.pid] = popen
            records.append(record)
            # Record every PID before waiting, so a crash of this process during start-up leaves them findable.
            write_state(state_dir, state_payload(records, gguf, threads=threads, ctx=ctx, batch=batch,
                                                 fleet_file=None))
            return record

        def relaunch(record: ServerRecord) -> ServerRecord | None:
            # Another program took the ephemeral port between our probe and the server's bind: try a fresh port.
            if base_port is not None:
                return None
            return launch(record.name, _free_port({r.port for r in records}))

        try:
            for i in range(n):
                name = f"local-{i + 1}"
                if base_port is not None:
                    port = base_port + i
                    if not _port_is_free(port):
                        raise LocalFleetError(f"port {port} on 127.0.0.1 is already in use",
                                              hint="pick another --base-port, or omit it to use free ports")
                else:
                    port = _free_port({r.port for r in records})
                launch(name, port)
            ready = wait_until_ready(list(records), popens, timeout_s=startup_timeout_s, relaunch=relaunch)
            records[:] = ready
            fleet_file = write_fleet_file(state_dir / FLEET_FILE, [(r.name, r.url) for r in ready],
                                          model=MODEL_ALIAS, threads=threads, stream=stream)
            write_state(state_dir, state_payload(ready, gguf, threads=threads, ctx=ctx, batch=batch,
                                                 fleet_file=fleet_file))
        except BaseException:
            # Whatever went wrong (including Ctrl-C), leave nothing running.
            for record in records:
                if record.is_ours():
                    procs.terminate(record.pid, grace_s=2.0)
            for popen in popens.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=1.0)
            state_path(state_dir).unlink(missing_ok=True)
            raise
    return LocalFleet(state_dir=state_dir, servers=tuple(records), model_path=gguf, model_alias=MODEL_ALIAS,
                      fleet_path=fleet_file, threads=threads, ctx=ctx, _popens=popens)


# --------------------------------------------------------------------------------------------------------------------
# Stopping


def _stop_records(records: list[ServerRecord], grace_s: float) -> StopReport:
    stopped: list[int] = []
    gone: list[int] = []
    not_ours: list[int] = []
    failed: list[int] = []
    ours = []
    for record in records:
        if not procs.is_running(record.pid):
            gone.append(record.pid)
        elif record.is_ours():
            ours.append(record)
        else:
            not_ours.append(record.pid)
    for record in ours:
        # Re-check just before signalling: the identity test and the kill are not atomic.
        if record.is_ours() and procs.terminate(record.pid, grace_s=grace_s):
            stopped.append(record.pid)
        elif procs.is_running(record.pid) and record.is_ours():
            failed.append(record.pid)
        else:
            gone.append(record.pid)
    return StopReport(tuple(stopped), tuple(gone), tuple(not_ours), tuple(failed))


def stop_local_fleet(state_dir: Path = Path(".harness"), *, grace_s: float = 5.0) -> StopReport:
    """Stop the servers recorded in ``state_dir`` and remove the state and fleet files. Logs are kept.

    Only processes that are still the ones we started are signalled (SIGTERM, then SIGKILL after ``grace_s``).
    Dead PIDs, and PIDs that now belong to another process, are skipped. Safe to call when nothing runs.

    Raises:
        LocalFleetError: a server we started would not die, or the state file is unreadable.
    """
    state_dir = Path(state_dir)
    if not state_dir.exists():
        return StopReport()
    with locked(state_dir):
        payload = read_state(state_dir)
        if payload is None:
            return StopReport()
        report = _stop_records(server_records(payload, state_path(state_dir)), grace_s)
        if report.failed:
            raise LocalFleetError(f"could not stop pid(s) {', '.join(map(str, report.failed))}",
                                  hint="stop them by hand (kill -9 <pid>), then run `harness fleet down` again")
        remove_state(state_dir)
    return report


__all__ = ["LocalFleet", "StopReport", "start_local_fleet", "stop_local_fleet"]
