"""What exactly a host serves, for the response cache's key: the model's digest where the server says it.

- Ollama: ``GET /api/tags`` lists each pulled model with its ``digest``.
- llama.cpp (OpenAI-compatible): ``GET /props`` names the ``model_path`` of the GGUF it loaded; the caller hashes
  that file when it is on this machine.

A probe never raises: what it could not learn stays ``None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from harness.config.fleet import Host

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServedModel:
    """``digest``: the server's own model digest (Ollama); ``model_path``: the GGUF a llama.cpp server loaded."""

    digest: str | None = None
    model_path: str | None = None
    error: str | None = None


async def probe_served_model(host: Host) -> ServedModel:
    headers = {}
    if host.token_env and os.environ.get(host.token_env):
        headers["Authorization"] = f"Bearer {os.environ[host.token_env]}"
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, headers=headers) as client:
            if host.kind == "ollama":
                return _ollama_digest(host, await _get(client, f"{host.base_url}/api/tags"))
            root = host.base_url.removesuffix("/v1")
            props = await _get(client, f"{root}/props")
            path = props.get("model_path") if isinstance(props, dict) else None
            return ServedModel(model_path=str(path) if path else None,
                               error=None if path else "/props named no model_path")
    except (httpx.HTTPError, ValueError) as exc:
        return ServedModel(error=f"{type(exc).__name__}: {exc}")


async def _get(client: httpx.AsyncClient, url: str) -> Any:
    response = await client.get(url)
    if response.status_code != 200:
        raise ValueError(f"GET {httpx.URL(url).path} answered HTTP {response.status_code}")
    return response.json()


def _ollama_digest(host: Host, tags: Any) -> ServedModel:
    wanted = host.model if ":" in host.model else f"{host.model}:latest"
    for entry in (tags or {}).get("models") or []:
        if not isinstance(entry, dict):
            continue
        names = {str(entry.get(key)) for key in ("name", "model") if entry.get(key)}
        if wanted in names or host.model in names:
            digest = entry.get("digest")
            return ServedModel(digest=str(digest) if digest else None,
                               error=None if digest else "/api/tags gave no digest")
    return ServedModel(error=f"model {host.model} is not in /api/tags")
