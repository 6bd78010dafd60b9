"""Process identity and memory, read from ``/proc`` (Linux) or psutil where there is no ``/proc``.

A PID alone does not name a process: after a crash the PID in a state file may belong to something else. We identify a
process by (PID, start time, command line) and only signal it when all three match what we recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LocalFleetError

_PROC = Path("/proc")
# Start times are compared with a tolerance: /proc gives clock ticks since boot, converted to epoch seconds.
START_TIME_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class ProcInfo:
    """What we know of a live process."""

    pid: int
    start_time: float
    cmdline: tuple[str, ...]
    zombie: bool


def _have_proc() -> bool:
    return (_PROC / "self" / "stat").exists()


@dataclass(frozen=True)
class _Clock:
    boot_time: float
    ticks: int


def _clock() -> _Clock:
    for line in (_PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return _Clock(float(line.split()[1]), os.sysconf("SC_CLK_TCK"))
    raise LocalFleetError("/proc/stat has no btime line", hint="run on Linux, or install psutil")


def proc_info(pid: int) -> ProcInfo | None:
    """Return the process with this PID, or ``None`` when there is none."""
    if pid <= 0:
        return None
    if _have_proc():
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
            raw_cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return None
        # The command name (field 2) may contain spaces and parentheses; the fields after the last ')' are plain.
        rest = stat[stat.rindex(")") + 2:].split()
        state, start_ticks = rest[0], int(rest[19])
        clock = _clock()
        cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0") if part)
        return ProcInfo(pid, clock.boot_time + start_ticks / clock.ticks, cmdline, zombie=state in ("Z", "X"))
    try:
        import psutil
    except ImportError as exc:  # pragma: no cover - non-Linux without psutil
        raise LocalFleetError("cannot inspect processes: no /proc and psutil is not installed",
                              hint="pip install psutil") from exc
    try:  # pragma: no cover - exercised only where /proc is absent
        proc = psutil.Process(pid)
        return ProcInfo(pid, proc.create_time(), tuple(proc.cmdline()), zombie=proc.status() == psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # pragma: no cover
        return None


def is_running(pid: int) -> bool:
    """True when the PID names a process that has not exited (zombies count as exited)."""
    info = proc_info(pid)
    return info is not None and not info.zombie


def same_process(pid: int, start_time: float, cmdline_markers: Sequence[str]) -> bool:
    """True when ``pid`` is still the process we started: same start time, and its command line has every marker.

    A marker is one or more whole arguments, e.g. ``"--port 8080"``.
    """
    info = proc_info(pid)
    if info is None or info.zombie:
        return False
    if abs(info.start_time - start_time) > START_TIME_TOLERANCE_S:
        return False
    # Match whole arguments: "--port 8080" must not match a command line with "--port 80801".
    joined = f" {' '.join(info.cmdline)} "
    return all(f" {marker} " in joined for marker in cmdline_markers)


def memory_kib(pid: int) -> dict[str, int]:
    """Return ``VmRSS`` (current) and ``VmHWM`` (peak resident set) in KiB, or ``{}`` when unknown."""
    if not _have_proc():
        return {}
    try:
        lines = (_PROC / str(pid) / "status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _reap(pid: int) -> None:
    # If the process is our own child, collect its exit status so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited; True if it did within the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pid)
        if not is_running(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def terminate(pid: int, *, grace_s: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace_s``. The caller has already checked the process is ours.

    Returns:
        True when the process is gone afterwards.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if wait_gone(pid, grace_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return wait_gone(pid, 5.0)
