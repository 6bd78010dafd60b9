"""The gateway's configuration, checked before anything listens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness.errors import InputError
from harness.gateway.tokens import TokenPolicy

_PREFIX = re.compile(r"(/[A-Za-z0-9_.~-]+)+")


@dataclass(frozen=True)
class Limits:
    """Resource limits.

    Args:
        max_body_bytes: largest request body accepted, counted while reading (chunked bodies too).
        rate_per_s: per-subject sustained requests per second.
        burst: per-subject burst size.
        max_upstream: concurrent upstream requests across all subjects.
        queue_timeout_s: how long a request waits for an upstream slot before a 503.
        header_timeout_s: how long a client may take to send a whole request: its line, headers and body.
        connect_timeout_s: connecting to an upstream; past it, 504.
        upstream_timeout_s: waiting between upstream bytes (a slow model is slow); past it, 504.
    """

    max_body_bytes: int = 1 << 20
    rate_per_s: float = 10.0
    burst: float = 20.0
    max_upstream: int = 64
    queue_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    upstream_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        checks = {
            "max_body_bytes": self.max_body_bytes > 0,
            "rate_per_s": self.rate_per_s > 0,
            "burst": self.burst >= 1,
            "max_upstream": self.max_upstream >= 1,
            "queue_timeout_s": self.queue_timeout_s >= 0,
            "header_timeout_s": self.header_timeout_s > 0,
            "connect_timeout_s": self.connect_timeout_s > 0,
            "upstream_timeout_s": self.upstream_timeout_s > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"gateway limit out of range: {', '.join(bad)}", hint="use positive values (burst >= 1)")


@dataclass(frozen=True)
class GatewaySettings:
    """Everything ``serve`` needs besides the keys.

    Args:
        upstreams: base URLs of the model servers (http or https), used least-busy first.
        allowed_hosts: ``Host`` header values accepted (host or host:port, lower case); the DNS-rebinding defence.
        policy: what tokens must say.
        limits: resource limits.
        openai: also pass the OpenAI-compatible routes (/v1/...).
        deny_list: the jti deny-list file, if any.
        audit_log: where the JSON audit lines go; None for stderr.
        prefix: a path prefix the gateway is served under (``/gpu-b`` for ``https://host/gpu-b``), stripped before
            the route check; empty for the root.
    """

    upstreams: tuple[str, ...]
    allowed_hosts: frozenset[str]
    policy: TokenPolicy = field(default_factory=TokenPolicy)
    limits: Limits = field(default_factory=Limits)
    openai: bool = False
    deny_list: Path | None = None
    audit_log: Path | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise InputError("no upstream given", hint="pass --upstream http://127.0.0.1:11434 (repeatable)")
        for url in self.upstreams:
            check_upstream_url(url)
        if self.prefix and (not _PREFIX.fullmatch(self.prefix) or {".", ".."} & set(self.prefix.split("/"))):
            raise InputError(
                f"prefix {self.prefix!r} is not a plain path", hint="use e.g. --prefix /gpu-b (no trailing slash)"
            )
        if not self.allowed_hosts:
            raise InputError("the Host allow-list is empty", hint="pass --allow-host gateway.example.org")


def check_upstream_url(url: str) -> None:
    """An upstream must be an absolute http(s) URL with a host and no query, fragment or credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"upstream {url!r} is not an http(s) URL", hint="use e.g. --upstream http://127.0.0.1:11434")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(
            f"upstream {url!r} carries a query, fragment or credentials",
            hint="give the server's base URL only, e.g. http://10.0.0.11:11434",
        )


def default_allowed_hosts(port: int, extra: list[str]) -> frozenset[str]:
    """Loopback names on the serving port, plus the names given with --allow-host."""
    names = {f"127.0.0.1:{port}", f"localhost:{port}"}
    names.update(host.strip().lower() for host in extra if host.strip())
    return frozenset(names)
