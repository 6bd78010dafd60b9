"""Is a just-launched llama.cpp server ready to serve? The start-up probes behind ``start_local_fleet``.

A server is ready once it lists the model at ``/v1/models`` (the weights loaded) *and* has answered a one-token
completion (the CPU can run them: a build for another CPU loads its model, then dies on its first token). A server
that dies on the way is reported with how it died and the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.errors import LocalFleetError
from harness.localfleet.exits import describe_returncode
from harness.localfleet.model import MODEL_ALIAS
from harness.localfleet.state import ServerRecord

_PORT_TAKEN = "address already in use"
MAX_PORT_RETRIES = 3


def lists_model(port: int, alias: str) -> bool:
    """True once the server lists our model at ``/v1/models`` (it has loaded it)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2.0) as response:
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(entry.get("id") == alias for entry in payload.get("data", []))


def first_completion_error(port: int, alias: str, timeout_s: float) -> str | None:
    """Ask for a one-token completion; ``None`` when one came back, else why not.

    Listing the model proves the weights loaded, not that the CPU can run them: a build for another CPU dies on its
    first matrix product (SIGILL), so a server counts as healthy only once it has generated a token.
    """
    body = json.dumps({"model": alias, "prompt": "The", "max_tokens": 1, "temperature": 0}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} to a one-token completion"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"no answer to a one-token completion ({type(exc).__name__}: {exc})"
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not choices or not isinstance(choices[0], dict) or "text" not in choices[0]:
        return "a one-token completion came back without a choice"
    return None


def _exit_code(popen: subprocess.Popen[bytes], wait_s: float) -> int | None:
    """The process's return code, waiting up to ``wait_s`` for a dying process to finish exiting."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        return popen.wait(timeout=wait_s)
    return None


def _died(record: ServerRecord, code: int, when: str) -> LocalFleetError:
    """One line saying how the server died and what to do, then its log's path and tail."""
    how = describe_returncode(code)
    if code < 0:
        hint = how.split(": ", 1)[-1]  # the signal's advice
    else:
        hint = "read the log above; a taken port, a damaged model file or too little memory are the usual causes"
    return LocalFleetError(
        f"{record.name} (pid {record.pid}, port {record.port}) {when}: {how}\n"
        f"last lines of {record.log}:\n{log_tail(record.log)}",
        hint=hint,
    )


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until_ready(
    records: list[ServerRecord],
    popens: dict[int, subprocess.Popen[bytes]],
    *,
    timeout_s: float,
    relaunch: Callable[[ServerRecord], ServerRecord | None],
) -> list[ServerRecord]:
    """Poll every server until it lists the model and answers a one-token completion; return the records with
    ``ready_s`` filled in, in order.

    ``relaunch`` gets a server that died because its port was taken and returns its replacement (``None``: give up).

    Raises:
        LocalFleetError: a server died, answered no completion, or was not ready within ``timeout_s``.
    """
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
                raise _died(record, code, "died during start-up")
            if lists_model(record.port, MODEL_ALIAS):
                remaining = max(10.0, deadline - time.monotonic())
                failure = first_completion_error(record.port, MODEL_ALIAS, remaining)
                if failure is not None:
                    code = _exit_code(popens[record.pid], 5.0)
                    if code is not None:
                        raise _died(record, code, "died on its first completion")
                    raise LocalFleetError(
                        f"{record.name} (pid {record.pid}, port {record.port}) loaded the model but gave {failure}; "
                        f"last lines of {record.log}:\n{log_tail(record.log)}",
                        hint="read the log above; the machine may be overloaded: retry with fewer servers",
                    )
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


__all__ = ["MAX_PORT_RETRIES", "first_completion_error", "lists_model", "log_tail", "wait_until_ready"]
