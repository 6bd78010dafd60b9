"""How an embedded llama.cpp server died, in one line: the signal, what it means, what to do.

One registry, :data:`SIGNALS`, maps each signal a server is likely to die of to its meaning and advice. It serves two
sources of evidence:

* the exit status of a server we are the parent of (``Popen.returncode``: ``-N`` means killed by signal ``N``);
* the server's log, for a server started by another process (``harness fleet up`` in another shell), whose exit
  status no one but init can collect. Servers run with Python's ``-X faulthandler``, which writes
  ``Fatal Python error: <name>`` to the log before a fatal signal takes the process down.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

REBUILD_HINT = "rebuild with `make rebuild-llama`"


@dataclass(frozen=True)
class SignalInfo:
    """What one fatal signal means for a llama.cpp server."""

    meaning: str
    advice: str
    faulthandler_name: str | None = None  # the name faulthandler prints for it; None: it cannot catch this signal


SIGNALS: dict[signal.Signals, SignalInfo] = {
    signal.SIGILL: SignalInfo(
        "illegal instruction",
        f"this llama.cpp build uses CPU instructions this machine cannot run; {REBUILD_HINT}",
        "Illegal instruction",
    ),
    signal.SIGSEGV: SignalInfo(
        "segmentation fault",
        f"a crash inside llama.cpp; read the log, and if it repeats {REBUILD_HINT}",
        "Segmentation fault",
    ),
    signal.SIGBUS: SignalInfo(
        "bus error",
        "the memory-mapped model file became unreadable (changed, truncated or on a full disk); check the GGUF file "
        "and free disk space",
        "Bus error",
    ),
    signal.SIGFPE: SignalInfo(
        "arithmetic fault",
        f"a crash inside llama.cpp; read the log, and if it repeats {REBUILD_HINT}",
        "Floating point exception",
    ),
    signal.SIGABRT: SignalInfo(
        "aborted",
        "llama.cpp stopped on a failed internal check; the log's last lines name it",
        "Aborted",
    ),
    signal.SIGKILL: SignalInfo(
        "killed",
        "often the kernel's out-of-memory killer (see `dmesg`); free memory or start fewer servers",
    ),
    signal.SIGTERM: SignalInfo(
        "terminated",
        "something stopped it (`harness fleet down`, a service manager or a user); start it again",
    ),
    signal.SIGINT: SignalInfo("interrupted", "a Ctrl-C reached it; start it again"),
    signal.SIGHUP: SignalInfo("hung up", "its terminal or session closed; start it again"),
}

_UNKNOWN_SIGNAL = SignalInfo("an unexpected signal", "read the log")


def signal_line(sig: signal.Signals) -> str:
    """``killed by SIGILL (illegal instruction): <advice>``."""
    info = SIGNALS.get(sig, _UNKNOWN_SIGNAL)
    return f"killed by {sig.name} ({info.meaning}): {info.advice}"


def describe_returncode(code: int) -> str:
    """One line for a ``Popen.returncode``: negative is a signal, anything else an exit code."""
    if code < 0:
        try:
            return signal_line(signal.Signals(-code))
        except ValueError:
            return f"killed by signal {-code}: read the log"
    if code == 0:
        return "exited with code 0 (it stopped on its own): read the log"
    return f"exited with code {code}: read the log"


def signal_from_log(text: str) -> signal.Signals | None:
    """The fatal signal faulthandler recorded in a server log, or ``None`` when it recorded none."""
    for line in reversed(text.splitlines()):
        if line.startswith("Fatal Python error: "):
            name = line.removeprefix("Fatal Python error: ").strip()
            for sig, info in SIGNALS.items():
                if info.faulthandler_name == name:
                    return sig
    return None


def describe_exit(returncode: int | None, log: str | Path) -> str:
    """How a server that is no longer running ended, from its exit status if we have it, else from its log."""
    if returncode is not None:
        return describe_returncode(returncode)
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        text = ""
    sig = signal_from_log(text)
    if sig is not None:
        return signal_line(sig)
    # Not our child and nothing in the log: SIGKILL (the OOM killer) and plain exits leave no trace there.
    return "exit status unknown to this process (SIGKILL and the out-of-memory killer leave no trace in the log)"


__all__ = [
    "REBUILD_HINT",
    "SIGNALS",
    "SignalInfo",
    "describe_exit",
    "describe_returncode",
    "signal_from_log",
    "signal_line",
]
