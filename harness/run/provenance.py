"""What a run's manifest records about where it ran: package versions, the checkout's commit, and the time."""

from __future__ import annotations

import importlib.metadata
import subprocess
from datetime import UTC, datetime

PACKAGES = (
    "rag-fleet-harness",
    "chromadb",
    "sentence-transformers",
    "bm25s",
    "anthropic",
    "httpx",
    "pandas",
    "llama-cpp-python",
    "torch",
    "numpy",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
