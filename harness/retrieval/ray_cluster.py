"""Joining a Ray cluster: the one place that imports ``ray`` for the rest of the package, lazily.

``--ray`` with no address starts a private local instance (``ray.init(address="local")``), for trying it out; with an
address it joins that cluster: ``host:port`` (the GCS port of `ray start --head`, from a machine of the cluster),
``ray://host:10001`` (the Ray Client server, from anywhere that reaches it) or ``auto`` (the cluster this machine is a
node of, as in a KubeRay RayJob). A missing ``ray`` package or an address
nobody answers is an input error (exit 2) that says what to do, before Ray spends half a minute retrying.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from harness.errors import InputError

_log = logging.getLogger(__name__)

INSTALL_HINT = "install the Ray extra: `pip install '.[ray]'` (or `make setup-ray`), pinned in locks/ray.txt"
LOCAL = "local"
_CONNECT_TIMEOUT_S = 5.0
# Ray's client proxier forks one server process per Ray Client connection. On a loaded machine that child can die at
# once, and Ray answers the connection with this; the next connection's server starts, so joining is tried again.
RAY_CLIENT_START_FAILED = "Initialization failure from server"
JOIN_ATTEMPTS = 3


def import_ray() -> Any:
    """The ``ray`` module, or an InputError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs the `ray` package, which is not installed", hint=INSTALL_HINT) from exc
    return ray


@dataclass(frozen=True)
class RayAddress:
    """Where to run: a local instance, a cluster's GCS (``host:port``) or a Ray Client server (``ray://host:port``)."""

    raw: str

    @property
    def local(self) -> bool:
        return self.raw == LOCAL

    @property
    def auto(self) -> bool:
        """``auto``: the cluster this machine belongs to (``$RAY_ADDRESS`` or a local `ray start`), e.g. in a RayJob."""
        return self.raw == "auto"

    @property
    def client(self) -> bool:
        return self.raw.startswith("ray://")

    def endpoint(self) -> tuple[str, int]:
        parsed = urlparse(self.raw if "://" in self.raw else f"tcp://{self.raw}")
        default = 10001 if self.client else 6379
        try:
            port = parsed.port or default
        except ValueError as exc:
            raise InputError(f"bad Ray address {self.raw!r}: {exc}", hint=_ADDRESS_HINT) from exc
        if not parsed.hostname:
            raise InputError(f"bad Ray address {self.raw!r}", hint=_ADDRESS_HINT)
        return parsed.hostname, port


_ADDRESS_HINT = ("give `--ray` alone for a local instance, `--ray HOST:6379` on a node of the cluster, "
                 "or `--ray ray://HOST:10001` for the Ray Client server")


def parse_address(value: str | None) -> RayAddress:
    """``None``/empty/"local" -> a local instance; else the address as given (checked when connecting)."""
    text = (value or "").strip()
    return RayAddress(text or LOCAL)


def check_reachable(address: RayAddress) -> None:
    """Fail fast with exit 2 when nothing listens at the address (Ray itself would retry for ~30 s)."""
    if address.local or address.auto:
        return
    host, port = address.endpoint()
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise InputError(f"no Ray cluster answers at {address.raw} ({exc.strerror or exc})",
                         hint="start one with `ray start --head` (see README, Ray), or fix the address; "
                              + _ADDRESS_HINT) from exc


def connect(address: RayAddress) -> Any:
    """Join the cluster (or start a local instance) unless this process already has; returns ``ray``.

    The harness package is shipped to the workers as a working directory when it is not installed on them, so a
    cluster started from the same checkout and a bare `ray start` both work.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    check_reachable(address)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # the core worker's C++ log, printed to stderr
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                              "runtime_env": _runtime_env()}
    if address.local:
        kwargs["include_dashboard"] = False
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        try:
            ray.init(address=address.raw, **kwargs)
            break
        except Exception as exc:  # ConnectionError, RuntimeError, grpc errors ... all mean "could not join"
            if RAY_CLIENT_START_FAILED in str(exc) and attempt < JOIN_ATTEMPTS:
                _log.warning("Ray Client's server at %s did not start (attempt %d of %d); joining again: %s",
                             address.raw, attempt, JOIN_ATTEMPTS, exc)
                continue
            raise InputError(f"could not join the Ray cluster at {address.raw}: {exc}", hint=_ADDRESS_HINT) from exc
    _quiet_ray_data()
    return ray


def _runtime_env() -> dict[str, Any]:
    """Workers import ``harness`` from the driver's checkout via PYTHONPATH, so a checkout need not be installed."""
    import harness

    root = os.path.dirname(os.path.dirname(os.path.abspath(harness.__file__)))
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONPATH"] = python_path
    return {"env_vars": env}


def _quiet_ray_data() -> None:
    """No Ray Data progress bars or per-stage logs on the harness's terminal: the CLI prints its own summary."""
    try:
        from ray.data import DataContext
    except ImportError:
        return
    context = DataContext.get_current()
    context.enable_progress_bars = False


def shutdown() -> None:
    """Leave the cluster (a local instance stops with it)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def cluster_accelerators(ray: Any) -> float:
    """GPUs in the cluster (0 on a CPU-only cluster)."""
    return float(ray.cluster_resources().get("GPU", 0.0))


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1.0)))
