"""Which headers cross the gateway: credentials, client identity and hop-by-hop headers never reach an upstream, and
nothing that reveals an upstream's address or software, or sets state on the client, comes back. Pure."""

from __future__ import annotations

import httpx
from starlette.datastructures import Headers

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Credentials and client-identity headers never reach an upstream; httpx sets host and content-length itself.
_STRIPPED_REQUEST = HOP_BY_HOP | {
    "host",
    "authorization",
    "cookie",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
}
# Headers through which an upstream could reveal its address or software, or set state on the client.
_STRIPPED_RESPONSE = HOP_BY_HOP | {"set-cookie", "server", "via", "location", "content-location", "alt-svc"}


def upstream_headers(headers: Headers) -> list[tuple[str, str]]:
    named_by_connection = {
        token.strip().lower() for value in headers.getlist("connection") for token in value.split(",")
    }
    dropped = _STRIPPED_REQUEST | named_by_connection
    return [(name, value) for name, value in headers.items() if name.lower() not in dropped]


def client_headers(headers: httpx.Headers, upstream_netloc: str, request_id: str) -> list[tuple[bytes, bytes]]:
    named_by_connection = {
        token.strip().lower() for value in headers.get_list("connection") for token in value.split(",")
    }
    dropped = _STRIPPED_RESPONSE | named_by_connection
    kept = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.multi_items()
        if name.lower() not in dropped and upstream_netloc not in value.lower()
    ]
    kept.append((b"x-request-id", request_id.encode()))
    return kept
