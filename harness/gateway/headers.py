"""Which headers cross the gateway: credentials, client identity and hop-by-hop headers never reach an upstream, and
nothing that reveals an upstream's address or software, or sets state on the client, comes back. Pure.

Both directions work on raw ``(name, value)`` byte pairs, in one pass each: the proxy runs this on every request, and
decoding every header into a mapping first cost more than the filtering itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Credentials and client-identity headers never reach an upstream; httpx sets host and content-length itself.
_STRIPPED_REQUEST = HOP_BY_HOP | {
    b"host",
    b"authorization",
    b"cookie",
    b"content-length",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-real-ip",
}
# Headers through which an upstream could reveal its address or software, or set state on the client.
_STRIPPED_RESPONSE = HOP_BY_HOP | {b"set-cookie", b"server", b"via", b"location", b"content-location", b"alt-svc"}


@dataclass(slots=True)
class RequestHeaders:
    """A request's headers as the gateway reads them: what the checks need, and what may go upstream."""

    hosts: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    content_length: str | None = None  # the first one; the HTTP parser refuses conflicting ones
    forwarded: list[tuple[str, str]] = field(default_factory=list)  # decoded as the upstream client takes them


def read_request_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """Sort a request's raw ASGI headers (names arrive lower-cased) into ``RequestHeaders`` in one pass."""
    headers = RequestHeaders()
    forwarded: list[tuple[bytes, bytes]] = []
    named_by_connection: set[bytes] = set()
    for name, value in raw:
        if name not in _STRIPPED_REQUEST:
            forwarded.append((name, value))
        elif name == b"host":
            headers.hosts.append(value.decode("latin-1"))
        elif name == b"authorization":
            headers.authorizations.append(value.decode("latin-1"))
        elif name == b"content-length":
            if headers.content_length is None:
                headers.content_length = value.decode("latin-1")
        elif name == b"connection":
            named_by_connection.update(token.strip().lower() for token in value.split(b","))
    headers.forwarded = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in forwarded
        if name not in named_by_connection
    ]
    return headers


def client_headers(
    raw: Iterable[tuple[bytes, bytes]], upstream_netloc: str, request_id: str
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that may reach the client, plus the gateway's request id."""
    pairs = [(name.lower(), value) for name, value in raw]
    named_by_connection = {
        token.strip().lower() for name, value in pairs if name == b"connection" for token in value.split(b",")
    }
    dropped = _STRIPPED_RESPONSE | named_by_connection
    netloc = upstream_netloc.encode("latin-1")
    kept = [(name, value) for name, value in pairs if name not in dropped and netloc not in value.lower()]
    kept.append((b"x-request-id", request_id.encode()))
    return kept
