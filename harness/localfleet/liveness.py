"""Is each embedded server still running? The dispatcher's host probe for a fleet started by ``harness fleet up``.

A server that dies mid-run otherwise shows up as a connection error, then as "breaker open" on every later call. The
local fleet knows the PIDs it started (the state file beside the fleet file), so it can say instead
"server exited (killed by SIGILL ...)", from the exit status when this process started the server, else from the
server's log (see :mod:`harness.localfleet.exits`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.config.fleet import Fleet
from harness.errors import LocalFleetError
from harness.localfleet.exits import describe_exit
from harness.localfleet.state import ServerRecord, read_state, server_records, state_path

# Every server this process launched, by PID: only the parent can read a child's exit status (which signal killed
# it), and the probe below asks for it when the server started in this same process.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def remember_child(popen: subprocess.Popen[bytes]) -> None:
    """Keep a server this process launched, so :func:`child_returncode` can read its exit status."""
    _CHILDREN[popen.pid] = popen


def child_returncode(pid: int) -> int | None:
    """The exit status of a server this process launched and that has exited; ``None`` otherwise."""
    popen = _CHILDREN.get(pid)
    return None if popen is None else popen.poll()


@dataclass(frozen=True)
class ServerLiveness:
    """Host name -> the server we started for it. Call it with a host name: ``None`` while that server runs (or the
    host is not one of ours), else one line saying how it ended."""

    servers: dict[str, ServerRecord]

    def __call__(self, host: str) -> str | None:
        record = self.servers.get(host)
        if record is None or record.is_ours():
            return None
        how = describe_exit(child_returncode(record.pid), record.log)
        return f"server exited (pid {record.pid}: {how}); log: {record.log}"


def _port(url: str) -> int | None:
    tail = url.rstrip("/").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def local_liveness(fleet: Fleet, fleet_path: Path) -> ServerLiveness | None:
    """The probe for a fleet file written by ``harness fleet up`` (its state file sits beside it); ``None`` for any
    other fleet, or when no host of this fleet is a server we recorded.

    A host is matched to a recorded server by its loopback port, so a renamed copy of the fleet file still works.
    """
    state_dir = Path(fleet_path).parent
    try:
        payload = read_state(state_dir)
        records = server_records(payload, state_path(state_dir)) if payload is not None else []
    except LocalFleetError:
        return None  # an unreadable state file: no probe, the dispatcher reports connection errors as before
    by_port = {record.port: record for record in records}
    servers: dict[str, ServerRecord] = {}
    for host in fleet.hosts:
        port = _port(host.base_url)
        if host.base_url.startswith(("http://127.0.0.1:", "http://localhost:")) and port in by_port:
            servers[host.name] = by_port[port]
    return ServerLiveness(servers) if servers else None


__all__ = ["ServerLiveness", "local_liveness"]
