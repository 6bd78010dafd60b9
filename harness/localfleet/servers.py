"""Start and stop the embedded local fleet: N real llama.cpp servers serving the bundled model on loopback ports.

``start_local_fleet`` launches ``python -m llama_cpp.server`` processes, waits until each answers ``GET /v1/models``,
records them in the state file (``<state_dir>/localfleet.json``, see :mod:`harness.localfleet.state`) and writes
``<state_dir>/fleet.yaml`` pointing at them.
``stop_local_fleet`` stops exactly the processes recorded there, after checking each PID still names the process we
started (start time and command line), so a PID reused by another program after a crash is never signalled.

The servers run in their own session, so they outlive the ``harness fleet up`` command that started them and ignore a
Ctrl-C meant for the shell.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import InputError, LocalFleetError
from harness.localfleet import procs
from harness.localfleet.fleetfile import STREAM, write_fleet_file
from harness.localfleet.model import MODEL_ALIAS, bundled_gguf
from harness.localfleet.state import (
    FLEET_FILE,
    SERVER_MODULE,
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

# llama_cpp.server reads every setting from an environment variable of the same name (pydantic-settings), and
# uvicorn.run() takes HOST and PORT from the environment *over* the command line. Strip them from the child's
# environment so a stray PORT or MODEL in the user's shell cannot move or change a server.
_SERVER_SETTING_NAMES = frozenset({
    "api_key", "cache", "cache_size", "cache_type", "chat_format", "chat_template_kwargs", "clip_model_path",
    "config_file", "disable_ping_events", "draft_model", "draft_model_num_pred_tokens", "embedding", "flash_attn",
    "hf_model_repo_id", "hf_pretrained_model_name_or_path", "hf_tokenizer_config_path", "host", "interrupt_requests",
    "kv_overrides", "last_n_tokens_size", "logits_all", "lora_base", "lora_path", "main_gpu", "model", "model_alias",
    "mul_mat_q", "n_batch", "n_ctx", "n_gpu_layers", "n_threads", "n_threads_batch", "n_ubatch", "numa",
    "offload_kqv", "port", "root_path", "rope_freq_base", "rope_freq_scale", "rope_scaling_type", "rpc_servers",
    "seed", "split_mode", "ssl_certfile", "ssl_keyfile", "tensor_split", "type_k", "type_v", "use_mlock", "use_mmap",
    "verbose", "vocab_only", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_ext_factor",
    "yarn_orig_ctx",
})


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


def _check_server_installed() -> None:
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise LocalFleetError(f"cannot start llama.cpp servers: Python module {module!r} is missing",
                                  hint="install the local extra: pip install -e '.[local]'")


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


def server_command(model_path: Path, port: int, *, threads: int, ctx: int, batch: int,
                   alias: str = MODEL_ALIAS) -> list[str]:
    """The command line of one server.

    Choices that are not the server's defaults, and why:

    * ``--n_threads_batch`` = ``--n_threads``: the default uses every core for prompt processing, so two servers on a
      2-core box would fight over both cores.
    * ``--logits_all false``: the default copies the logits of every prompt token (262k-entry vocabulary, 1 MB per
      token) into a NumPy array; we never ask for logprobs. Measured on a 1,720-token prompt: peak RSS 3.2 GB and
      22 s with the default, 0.46 GB and 7 s without.
    * ``--use_mlock false``: mlock of 250 MB fails under the default RLIMIT_MEMLOCK of containers and CI runners.
    * ``--interrupt_requests false``: otherwise a ``GET /v1/models`` status probe cuts a streamed answer short.
    * ``--verbose true`` (the default) keeps llama.cpp's per-request timings in the log; ``bench/`` parses them.
    """
    return [
        sys.executable, "-m", SERVER_MODULE,
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_ctx", str(ctx),
        "--n_batch", str(batch),
        "--n_ubatch", str(batch),
        "--logits_all", "false",
        "--use_mlock", "false",
        "--interrupt_requests", "false",
        "--verbose", "true",
    ]


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.lower() not in _SERVER_SETTING_NAMES}


def _launch(name: str, model_path: Path, port: int, log_path: Path, *, threads: int, ctx: int,
            batch: int) -> tuple[subprocess.Popen[bytes], ServerRecord]:
    command = server_command(model_path, port, threads=threads, ctx=ctx, batch=batch)
    with log_path.open("wb") as log:
        try:
            popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=_child_env(), start_new_session=True, close_fds=True)
        except OSError as exc:
            raise LocalFleetError(f"could not launch {name}: {exc}", hint="check the Python interpreter") from exc
    info = procs.proc_info(popen.pid)
    # The process can only be gone already if it failed at once; its start time is then irrelevant.
    start_time = info.start_time if info is not None else time.time()
    launched_at = datetime.now(UTC).isoformat(timespec="seconds")
    record = ServerRecord(name=name, pid=popen.pid, port=port, start_time=start_time, launched_at=launched_at,
                          log=str(log_path))
    return popen, record


def _healthy(port: int, alias: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2.0) as response:
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(entry.get("id") == alias for entry in payload.get("data", []))


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


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
    _check_server_installed()
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
            ready = _wait_healthy(list(records), popens, timeout_s=startup_timeout_s, relaunch=relaunch)
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


_PORT_TAKEN = "address already in use"
MAX_PORT_RETRIES = 3


def _wait_healthy(
    records: list[ServerRecord],
    popens: dict[int, subprocess.Popen[bytes]],
    *,
    timeout_s: float,
    relaunch: Callable[[ServerRecord], ServerRecord | None],
) -> list[ServerRecord]:
    """Poll every server until it answers ``/v1/models``; return the records with ``ready_s`` filled in, in order."""
    launched = time.monotonic()
    deadline = launched + timeout_s
    pending = {r.name: r for r in records}
    ready: dict[str, ServerRecord] = {}
    retries = 0
    while pending:
        for name, record in list(pending.items()):
            code = popens[record.pid].poll()
            if code is not None:
                tail = log_tail(record.log)
                if _PORT_TAKEN in tail.lower() and retries < MAX_PORT_RETRIES:
                    replacement = relaunch(record)
                    if replacement is not None:
                        retries += 1
                        pending[name] = replacement
                        continue
                raise LocalFleetError(
                    f"{record.name} (pid {record.pid}, port {record.port}) exited with code {code} during start-up;"
                    f" last lines of {record.log}:\n{tail}",
                    hint="read the log above; a taken port or too little memory are the usual causes",
                )
            if _healthy(record.port, MODEL_ALIAS):
                ready[name] = replace(record, ready_s=round(time.monotonic() - launched, 3))
                del pending[name]
        if not pending:
            break
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{r.name} (port {r.port}), last log line: {log_tail(r.log, 1)!r}"
                               for r in pending.values())
            raise LocalFleetError(f"not healthy after {timeout_s:.0f} s: {detail}",
                                  hint="the machine may be overloaded; retry with fewer servers or a longer timeout")
        time.sleep(0.1)
    return [ready[r.name] for r in records]


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


__all__ = [
    "LocalFleet",
    "StopReport",
    "log_tail",
    "server_command",
    "start_local_fleet",
    "stop_local_fleet",
]
