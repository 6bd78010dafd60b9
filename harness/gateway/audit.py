"""The audit log: one JSON line per request, flushed as written. It never holds a token or a header value."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# one encoder for the process: json.dumps builds a new one per call whenever an option differs from its defaults
_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


@dataclass
class AuditRecord:
    """One request as the audit log records it. ``route`` is the normalised path; ``reason`` says why a refusal."""

    ts: float
    request_id: str
    client: str
    method: str
    route: str
    status: int
    subject: str | None = None
    jti: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    latency_ms: float = 0.0
    upstream: str | None = None
    reason: str | None = None


class AuditLog:
    """Appends records to a file (created 0600), or to stderr when no path is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: IO[str]
        self._owned = path is not None
        if path is None:
            self._handle = sys.stderr
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8")

    def write(self, record: AuditRecord) -> None:
        # vars(), not asdict(): the record is flat, and this runs once per request
        line = _ENCODE(vars(record))
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._owned:
            self._handle.close()
