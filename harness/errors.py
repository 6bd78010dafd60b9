"""Every error the harness raises on purpose.

The tree::

    HarnessError                  base; carries a hint of what to do next
    ├── InputError                the user's input is wrong (CLI exit code 2)
    │   ├── ConfigError           a suite, fleet, pricing or gate file is invalid (names file:line and field)
    │   ├── CorpusError           a corpus document is malformed or missing
    │   └── RunStoreError         a run directory is missing, damaged or of another version
    ├── RetrievalError            an index or vector store failed
    ├── ProviderError             one model server or API call failed (carries host, status, retryable)
    │   └── FleetUnavailable      every host failed and the fallback policy allowed nothing more
    ├── BudgetExceeded            a run would spend more than its budget cap
    ├── RunFailed                 a run finished, but a tier it ran answered nothing or failed too often (exit 3)
    ├── RunInterrupted            SIGINT or SIGTERM stopped a run (exit code 128 + signal number)
    └── LocalFleetError           the embedded llama.cpp fleet could not start or stop

Third-party exceptions are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

import signal


class HarnessError(Exception):
    """Base of every deliberate harness error.

    Args:
        message: what went wrong, in one line.
        hint: what the user should do about it.
    """

    exit_code = 3

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(HarnessError):
    """The user's input is wrong; nothing ran."""

    exit_code = 2


class ConfigError(InputError):
    """A YAML file failed validation.

    Args:
        message: what is wrong with the field.
        path: the file.
        line: 1-based line of the offending node, when known.
        field: dotted path of the field, e.g. ``cases[3].relevant``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str = "",
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {field}: " if field else f"{where}: "
        super().__init__(prefix + message, hint=hint)


class CorpusError(InputError):
    """A corpus document is malformed, duplicated or missing."""


class RunStoreError(InputError):
    """A run directory is missing, incomplete or written by another version."""


class RetrievalError(HarnessError):
    """An index or vector store operation failed."""


class ProviderError(HarnessError):
    """One call to one model server failed.

    Args:
        message: what failed.
        host: the host name from the fleet file (or ``"cloud"``).
        status: HTTP status, when there was one.
        retryable: whether the same call may succeed if tried again.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str = "",
        status: int | None = None,
        retryable: bool = False,
        hint: str = "",
    ) -> None:
        self.host = host
        self.status = status
        self.retryable = retryable
        super().__init__(f"{host}: {message}" if host else message, hint=hint)


class FleetUnavailable(ProviderError):
    """Every host failed and the fallback policy allowed nothing more.

    Args:
        reasons: host name -> why that host failed.
    """

    def __init__(self, reasons: dict[str, str], *, hint: str = "") -> None:
        self.reasons = dict(reasons)
        detail = "; ".join(f"{host}: {why}" for host, why in self.reasons.items()) or "no hosts"
        super().__init__(
            f"fleet unavailable ({detail})",
            hint=hint or "check `harness fleet status`, or allow `fallback: cloud` in the fleet file",
        )


class BudgetExceeded(HarnessError):
    """A run would spend more than its budget cap."""

    exit_code = 2


class RunFailed(HarnessError):
    """A run finished, but a tier it was asked to run answered nothing or failed more calls than allowed."""


class RunInterrupted(HarnessError):
    """A signal stopped a run; what was written is kept and the run can be resumed.

    Args:
        signum: the signal received, e.g. ``signal.SIGTERM``.
    """

    def __init__(self, signum: int, *, hint: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention for a process ended by a signal
        super().__init__(f"interrupted by {signal.Signals(signum).name}", hint=hint)


class LocalFleetError(HarnessError):
    """The embedded llama.cpp fleet could not start or stop."""
