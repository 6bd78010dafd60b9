"""A real two-node Ray cluster on loopback for the Ray tests, and a ``chroma run`` server beside it.

The head listens on 127.0.0.2 and the second node on 127.0.0.3, both on this machine's loopback: Ray replaces
127.0.0.1 with the machine's outward address, and 127.0.0.2/.3 keep every packet on ``lo``. Each node is a
``ray start --block`` in its own session, so stopping it kills that session (raylet, GCS, workers) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.retrieval.ray_cluster import RAY_CLIENT_START_FAILED

BIN = Path(sys.executable).parent
HEAD_IP = "127.0.0.2"
NODE_IP = "127.0.0.3"
START_TIMEOUT_S = 120


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def session_members(session_id: int) -> list[int]:
    """Every live process whose session id is ``session_id`` (a ``ray start --block`` and all it spawned)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session_id:  # state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


def stop_session(process: subprocess.Popen[bytes], grace_s: float = 5) -> None:
    """SIGTERM a node's session, wait for it to leave, then SIGKILL whatever is left."""
    sid = process.pid
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def ray_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return env


@dataclass
class RayCluster:
    """Nodes started with `ray start`; ``address`` is the GCS address a driver on this machine joins."""

    temp_dir: Path
    port: int
    client_port: int
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://{HEAD_IP}:{self.client_port}"

    def start_node(self, head: bool) -> subprocess.Popen[bytes]:
        ip = HEAD_IP if head else NODE_IP
        args = [str(BIN / "ray"), "start", "--block", "--num-cpus", "1", "--node-ip-address", ip,
                "--object-store-memory", str(80 * 1024 * 1024),
                "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port())]
        if head:
            args += ["--head", "--port", str(self.port), "--ray-client-server-port", str(self.client_port),
                     "--temp-dir", str(self.temp_dir), "--include-dashboard", "false"]
        else:
            args += ["--address", self.address]
        log = self.temp_dir.parent / f"{'head' if head else f'node{len(self.nodes)}'}.log"
        self.logs.append(log)
        process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=ray_env(),
                                   start_new_session=True)
        self.nodes.append(process)
        self._wait_started(process, log)
        return process

    def _wait_started(self, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"ray start exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray start did not come up within {START_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.3)

    def stop(self) -> None:
        for process in reversed(self.nodes):
            stop_session(process)
        self.nodes.clear()


def start_cluster(nodes: int = 2) -> RayCluster:
    """A head and ``nodes - 1`` more nodes, one CPU each. A short temp dir: Ray's socket paths must fit 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="rh-ray-", dir="/tmp"))
    cluster = RayCluster(temp_dir=root / "t", port=free_port(HEAD_IP), client_port=free_port(HEAD_IP))
    try:
        cluster.start_node(head=True)
        for _ in range(nodes - 1):
            cluster.start_node(head=False)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def remove_cluster_dir(cluster: RayCluster) -> None:
    shutil.rmtree(cluster.temp_dir.parent, ignore_errors=True)


@dataclass
class ChromaServer:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        stop_session(self.process, grace_s=10)


def start_chroma(data_dir: Path) -> ChromaServer:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir.parent / "chroma.log"
    process = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port",
                                str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    server = ChromaServer(process, url)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"chroma run exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("chroma run did not answer its heartbeat within 60 s")
        time.sleep(0.2)


# The harness joins again itself when Ray Client's per-connection server dies at start-up (RAY_CLIENT_START_FAILED);
# a whole call is made again too, at most twice, each failure shown, for when all of its attempts met a dying server.
def harness_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``harness ARGS`` in a fresh process (so each driver joins and leaves Ray on its own)."""
    full_env = ray_env()
    full_env.update(env or {})
    command = [sys.executable, "-m", "harness.cli.main", *args]
    for attempts_left in (2, 1, 0):
        result = subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout,
                                check=False)
        if not attempts_left or result.returncode == 0 or RAY_CLIENT_START_FAILED not in result.stderr:
            break
        print(f"Ray Client's server did not start; trying again. This attempt:\n{result.stderr}", file=sys.stderr)
    return result
