"""The state file of the embedded local fleet: which llama.cpp servers we started, and how to recognise them.

``<state_dir>/localfleet.json`` records every server (:class:`ServerRecord`: PID, port, process start time, log)
together with the model and settings it was started with. It is written atomically (temp file + rename), and
``<state_dir>/localfleet.lock`` serialises ``harness fleet up`` and ``harness fleet down`` across processes.

A recorded PID counts as ours only while its start time and command line still match the record, so a PID reused
by another program after a crash is never mistaken for one of our servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import LocalFleetError
from harness.localfleet import procs
from harness.localfleet.command import SERVER_MODULE
from harness.localfleet.model import MODEL_ALIAS

STATE_FILE = "localfleet.json"
FLEET_FILE = "fleet.yaml"
STATE_VERSION = 1


@dataclass(frozen=True)
class ServerRecord:
    """One server we started."""

    name: str
    pid: int
    port: int
    start_time: float  # the process's start time (epoch s), part of its identity
    launched_at: str  # ISO-8601 UTC wall clock when we launched it
    log: str
    ready_s: float | None = None  # seconds from launch until it answered a one-token completion

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def identity_markers(self) -> tuple[str, ...]:
        """Whole command-line arguments only our server on this port has."""
        return (f"-m {SERVER_MODULE}", f"--port {self.port}")

    def is_ours(self) -> bool:
        """True while the recorded PID still names the server we started."""
        return procs.same_process(self.pid, self.start_time, self.identity_markers())


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, payload: dict[str, Any]) -> None:
    """Replace the state file atomically, so a reader never sees half of it."""
    path = state_path(state_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def read_state(state_dir: Path = Path(".harness")) -> dict[str, Any] | None:
    """Return the parsed state file, or ``None`` when there is none.

    Raises:
        LocalFleetError: the file exists but is not a state file we can read.
    """
    path = state_path(Path(state_dir))
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise LocalFleetError(f"{path}: unreadable local fleet state: {exc}",
                              hint=f"stop stray llama_cpp.server processes by hand, then delete {path}") from exc
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        raise LocalFleetError(f"{path}: not a version-{STATE_VERSION} local fleet state file",
                              hint=f"stop stray llama_cpp.server processes by hand, then delete {path}")
    return payload


def server_records(payload: dict[str, Any], path: Path) -> list[ServerRecord]:
    """The servers listed in a state payload read from ``path``.

    Raises:
        LocalFleetError: an entry does not match :class:`ServerRecord`.
    """
    try:
        return [ServerRecord(**entry) for entry in payload.get("servers", [])]
    except TypeError as exc:
        raise LocalFleetError(f"{path}: malformed server entry: {exc}",
                              hint=f"stop stray llama_cpp.server processes by hand, then delete {path}") from exc


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise ``up`` and ``down`` on one state directory across processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "localfleet.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def state_payload(records: list[ServerRecord], model_path: Path, *, threads: int, ctx: int, batch: int,
                  fleet_file: Path | None) -> dict[str, Any]:
    """The state file's content for these servers; ``fleet_file`` is ``None`` until all of them are healthy."""
    return {
        "version": STATE_VERSION,
        "model_path": str(model_path),
        "model_alias": MODEL_ALIAS,
        "threads": threads,
        "ctx": ctx,
        "batch": batch,
        "fleet_file": str(fleet_file) if fleet_file else None,
        "servers": [asdict(r) for r in records],
    }


def clear_stale_state(state_dir: Path) -> None:
    """Refuse to start over a live fleet; forget a fleet whose processes are all gone."""
    payload = read_state(state_dir)
    if payload is None:
        return
    records = server_records(payload, state_path(state_dir))
    alive = [r for r in records if r.is_ours()]
    if alive:
        ports = ", ".join(str(r.port) for r in alive)
        raise LocalFleetError(f"a local fleet is already running from {state_dir} (ports {ports})",
                              hint="use it (its fleet file is " + str(state_dir / FLEET_FILE) + "), or stop it with "
                                   "`harness fleet down`")
    remove_state(state_dir)


def remove_state(state_dir: Path) -> None:
    """Delete the state file and the fleet file (logs are kept)."""
    state_path(state_dir).unlink(missing_ok=True)
    (state_dir / FLEET_FILE).unlink(missing_ok=True)


def running_fleet(state_dir: Path = Path(".harness")) -> list[ServerRecord]:
    """The recorded servers that are still running (and still ours)."""
    payload = read_state(Path(state_dir))
    if payload is None:
        return []
    return [r for r in server_records(payload, state_path(Path(state_dir))) if r.is_ours()]


__all__ = [
    "FLEET_FILE",
    "STATE_FILE",
    "STATE_VERSION",
    "ServerRecord",
    "clear_stale_state",
    "locked",
    "read_state",
    "remove_state",
    "running_fleet",
    "server_records",
    "state_path",
    "state_payload",
    "write_state",
]
