"""The provider interface, and the one registry of wire protocols.

A provider speaks one wire protocol to one host. It turns a GenerationRequest into a Generation, or raises
ProviderError (with ``status`` and ``retryable``). It never retries across hosts and never records attempts: that is
the dispatcher's job. SDK imports stay inside the provider modules so the package loads without optional extras.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import InputError

if TYPE_CHECKING:
    from harness.config.fleet import Host
    from harness.providers.types import Generation, GenerationRequest


@dataclass(frozen=True)
class HostStatus:
    """What ``harness fleet status`` shows for one host."""

    host: str
    reachable: bool
    version: str | None = None
    model_present: bool | None = None
    models: tuple[str, ...] = ()
    error: str | None = None


class Provider(Protocol):
    """One host behind one wire protocol."""

    name: str

    async def generate(self, request: GenerationRequest) -> Generation:
        """Answer one request or raise ProviderError."""
        ...

    async def status(self) -> HostStatus:
        """Probe reachability, version and whether the configured model is present."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# kind -> "module:Class"; the only list of wire protocols.
PROVIDERS: dict[str, str] = {
    "ollama": "harness.providers.ollama:OllamaProvider",
    "openai": "harness.providers.openai_compat:OpenAICompatProvider",
}


def provider_for(host: Host, **options: Any) -> Provider:
    """Build the provider for a fleet host from the registry (``options`` go to its constructor, e.g. ``timeout_s``)."""
    target = PROVIDERS.get(host.kind)
    if target is None:
        raise InputError(f"unknown host kind {host.kind!r}", hint=f"use one of: {', '.join(sorted(PROVIDERS))}")
    module_name, class_name = target.split(":")
    provider_class = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = provider_class(host, **options)  # the registry names Provider classes only
    return provider
