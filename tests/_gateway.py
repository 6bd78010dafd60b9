"""Shared by the gateway tests: keys, tokens, a gateway in front of a fake, and a raw HTTP/1.1 client.

The raw client exists because httpx (like every well-behaved client) normalises dot segments and would never send
the hostile paths the gateway must refuse.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.fakes import FakeServer
from harness.gateway.audit import AuditLog
from harness.gateway.keys import keygen, load_keyset, public_path
from harness.gateway.server import GatewayServer, local_gateway
from harness.gateway.settings import GatewaySettings, Limits, default_allowed_hosts
from harness.gateway.tokens import KeySet, TokenPolicy, mint

POLICY = TokenPolicy(audience="harness-gateway", issuer="harness", leeway_s=30, max_ttl_s=3600)
ALL_SCOPES = ("generate", "chat", "embed", "models")
CHAT_BODY = {"model": "llama3.2", "messages": [{"role": "user", "content": "Is drip edge required?"}], "stream": False}


@dataclass
class KeyFiles:
    private: Path
    public: Path
    signing: KeySet
    verifying: KeySet


def make_keys(directory: Path, alg: str = "EdDSA") -> KeyFiles:
    private = directory / f"keys-{alg}.json"
    keygen(private, alg)  # type: ignore[arg-type]
    public = public_path(private) if alg == "EdDSA" else private
    return KeyFiles(private, public, load_keyset(private), load_keyset(public))


def token_for(keys: KeySet, scopes: tuple[str, ...] = ALL_SCOPES, **kwargs: Any) -> str:
    options: dict[str, Any] = {"subject": "ci-nightly", "ttl_s": 600, "policy": POLICY}
    options.update(kwargs)
    return mint(keys.signing_key(), scopes=scopes, **options)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@contextmanager
def gateway_for(
    upstreams: list[FakeServer] | list[str],
    keys: KeySet,
    *,
    audit_path: Path | None = None,
    **overrides: Any,
) -> Iterator[GatewayServer]:
    """A running gateway in front of ``upstreams``; ``overrides`` set GatewaySettings fields or Limits fields."""
    urls = tuple(u if isinstance(u, str) else u.url for u in upstreams)
    limit_names = set(Limits.__dataclass_fields__)
    limit_overrides = {k: v for k, v in overrides.items() if k in limit_names}
    setting_overrides = {k: v for k, v in overrides.items() if k not in limit_names}

    def settings(port: int) -> GatewaySettings:
        base = GatewaySettings(
            upstreams=urls,
            allowed_hosts=default_allowed_hosts(port, ["gateway.example.test"]),
            policy=POLICY,
            limits=replace(Limits(), **limit_overrides),
            audit_log=audit_path,
        )
        return replace(base, **setting_overrides)

    server = local_gateway(settings, keys, audit=AuditLog(audit_path) if audit_path else _NullAudit())
    with server:
        yield server


class _NullAudit(AuditLog):
    """Audit lines kept in memory, so tests that do not read them do not flood stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.path = None
        self._owned = False

    def write(self, record: Any) -> None:
        self.lines.append(json.dumps(record.__dict__))

    def close(self) -> None:
        pass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(
    port: int,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    chunks: list[bytes] | None = None,
    host: str | None = None,
) -> RawResponse:
    """Send one request exactly as written (target unnormalised) and read the whole response (connection: close)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    payload = b""
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    elif body is not None:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")
        # the gateway may answer (413) and close before a long body is all sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
    return parse_response(received)


def parse_response(received: bytes) -> RawResponse:
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return RawResponse(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def upstream_saw_nothing(fake: FakeServer) -> bool:
    """The fake's request log is empty and it never even began reading a request."""
    return not fake.requests and fake.generations == 0 and fake.unread == 0
