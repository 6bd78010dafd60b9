"""What serves each tier, for the response cache's key (:func:`harness.run.cache.cache_key`)."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

from harness.config.fleet import Fleet, Host
from harness.config.suite import CacheMode
from harness.run.cache import CachedTier, ResponseCache, ServedBy, reads
from harness.run.tiers import AnswerTier, tier_kind

CLOUD_DIGEST_SOURCE = "none: the model name, which Anthropic pins to a snapshot"


async def local_identity(fleet: Fleet, cache: ResponseCache) -> ServedBy:
    """Per host (by kind, never by name or address): model, endpoint and digest where one is known.

    The digest is Ollama's own, or the sha256 of the GGUF a llama.cpp server names in ``/props`` when that file is on
    this machine (hashed once per path, size and mtime). Otherwise ``digest`` is ``None`` and the model name alone
    keys the answers, which the identity says. The digests are also kept by host name, so a stored answer records
    the digest of the host that made it.
    """
    from harness.providers.model_identity import probe_served_model

    served = await asyncio.gather(*(probe_served_model(host) for host in fleet.hosts))
    by_name = {
        host.name: _host_identity(host, found.digest, found.model_path, cache)
        for host, found in zip(fleet.hosts, served, strict=True)
    }
    hosts = {json.dumps(identity, sort_keys=True) for identity in by_name.values()}
    return ServedBy(
        {"hosts": [json.loads(text) for text in sorted(hosts)]},
        {name: (identity["digest"], identity["digest_source"]) for name, identity in by_name.items()},
    )


def _host_identity(host: Host, digest: str | None, model_path: str | None, cache: ResponseCache) -> dict[str, Any]:
    source = "ollama /api/tags" if digest else None
    if digest is None and model_path and Path(model_path).is_file():
        digest, source = cache.file_sha256(Path(model_path)), "sha256 of the GGUF"
    return {
        "kind": host.kind,
        "model": host.model,
        "endpoint": host.endpoint,
        "digest": digest,
        "digest_source": source or "unknown",  # stable, so a passing probe failure does not split the cache
    }


async def cloud_identity(model: str) -> ServedBy:
    return ServedBy({"hosts": [{"kind": "anthropic", "model": model}]}, {"cloud": (None, CLOUD_DIGEST_SOURCE)})


def with_cache(
    tiers: list[AnswerTier], fleet: Fleet | None, cache_dir: Path | None, mode: CacheMode = "read-write",
    run_id: str | None = None,
) -> list[AnswerTier]:
    """Put every tier behind the response cache in ``cache_dir``, reading it only in ``read-write`` mode.

    ``mode`` ``off`` or no ``cache_dir`` leaves the tiers unchanged. ``run_id`` is recorded with every answer stored.
    """
    if cache_dir is None or mode == "off" or not tiers:
        return tiers
    cache = ResponseCache.open(cache_dir)
    wrapped: list[AnswerTier] = []
    for tier in tiers:
        served = getattr(tier, "fleet", None) or fleet  # each fleet tier is keyed by its own hosts
        if tier_kind(tier) == "local" and served is not None:
            identity = partial(local_identity, served, cache)
        else:
            identity = partial(cloud_identity, str(getattr(tier, "model", "unknown")))
        wrapped.append(CachedTier(tier, cache, identity, read=reads(mode), run_id=run_id))
    return wrapped
