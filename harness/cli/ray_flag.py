"""``--ray`` on ingest and run: its settings, checked before anything loads, and leaving the cluster afterwards."""

from __future__ import annotations

import os
from typing import Any

from harness.errors import InputError


def ray_options(address: str | None, chroma_url: str | None, *, batch_size: int = 256, case_batch: int = 8) -> Any:
    """``--ray``'s settings, checked before anything loads: the ray package and a Chroma server every worker reaches."""
    if address is None:
        return None
    from harness.retrieval.ray_cluster import check_reachable, import_ray, parse_address
    from harness.run.session import RayOptions

    import_ray()
    check_reachable(parse_address(address))
    if not (chroma_url or os.environ.get("HARNESS_CHROMA_URL")):
        raise InputError(
            "--ray needs a Chroma server that every Ray worker can reach, and HARNESS_CHROMA_URL is not set",
            hint="start one (`chroma run --path DIR --host 0.0.0.0`) and set HARNESS_CHROMA_URL=http://HOST:8000, "
            "or pass --chroma-url",
        )
    return RayOptions(address=address, batch_size=batch_size, case_batch=case_batch)


def leave_ray(options: Any) -> None:
    if options is not None:
        from harness.retrieval.ray_cluster import shutdown

        shutdown()
