"""``harness gateway``: make keys, mint tokens, and serve the signed-token gateway in front of the fleet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from harness.cli.console import errors
from harness.errors import InputError

gateway_app = typer.Typer(
    name="gateway",
    help="The signed-token gateway: keygen, token, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

KeysOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="key file (default: $HARNESS_GATEWAY_KEYS); serve needs only the .pub file for EdDSA"),
]
AudienceOpt = Annotated[str, typer.Option("--aud", help="the token audience this gateway accepts")]
IssuerOpt = Annotated[str, typer.Option("--iss", help="the token issuer this gateway accepts")]
MaxTtlOpt = Annotated[str, typer.Option("--max-ttl", help="longest token lifetime accepted or minted, e.g. 24h")]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> float:
    """``"90"``, ``"45s"``, ``"30m"``, ``"1h"``, ``"2d"`` → seconds; an InputError naming the option otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(f"{option}: {text!r} is not a duration", hint="use e.g. 90s, 30m, 1h or 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@gateway_app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="key file to create, or to add a key to (rotation)")],
    alg: Annotated[
        str, typer.Option("--alg", help="EdDSA (default; the gateway holds only the public key) or HS256")
    ] = "EdDSA",
) -> None:
    """Add a new key to a key file (mode 0600); the newest key signs, older keys verify until removed."""
    from harness.gateway.keys import keygen as make_key

    algorithm = _algorithm(alg)
    kid, public = make_key(out, algorithm)
    errors.print(f"added key {kid} ({algorithm}) to {out}", markup=False, highlight=False)
    if public is not None:
        errors.print(f"public keys for `gateway serve --keys`: {public}", markup=False, highlight=False)


def _algorithm(alg: str) -> Literal["EdDSA", "HS256"]:
    if alg == "EdDSA":
        return "EdDSA"
    if alg == "HS256":
        return "HS256"
    raise InputError(f"--alg: {alg!r} is not supported", hint="use EdDSA or HS256")


@gateway_app.command()
def token(
    sub: Annotated[str, typer.Option("--sub", help="who the token is for, e.g. ci-nightly")],
    scope: Annotated[str, typer.Option("--scope", help="comma-separated: generate, chat, embed, models")],
    ttl: Annotated[str, typer.Option("--ttl", help="lifetime, e.g. 1h")] = "1h",
    keys: KeysOpt = None,
    kid: Annotated[str | None, typer.Option("--kid", help="sign with this key (default: the newest)")] = None,
    aud: AudienceOpt = "harness-gateway",
    iss: IssuerOpt = "harness",
    max_ttl: MaxTtlOpt = "24h",
) -> None:
    """Mint a token and print it on stdout (and nothing else, so it can be captured into a variable)."""
    from harness.gateway.keys import load_keyset, resolve_keys_path
    from harness.gateway.tokens import TokenPolicy, mint, parse_scopes

    policy = TokenPolicy(audience=aud, issuer=iss, max_ttl_s=parse_duration(max_ttl, "--max-ttl"))
    keyset = load_keyset(resolve_keys_path(keys))
    signed = mint(
        keyset.signing_key(kid),
        subject=sub,
        scopes=parse_scopes(scope),
        ttl_s=parse_duration(ttl, "--ttl"),
        policy=policy,
    )
    typer.echo(signed)


@gateway_app.command()
def serve(
    upstream: Annotated[list[str], typer.Option("--upstream", help="model server base URL (repeatable)")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8443,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    keys: KeysOpt = None,
    allow_host: Annotated[
        list[str] | None, typer.Option("--allow-host", help="Host header value to accept (repeatable)")
    ] = None,
    openai: Annotated[
        bool, typer.Option("--openai", help="also pass /v1/chat/completions, /v1/completions, /v1/models")
    ] = False,
    deny_list: Annotated[
        Path | None, typer.Option("--deny-list", help="file of revoked jtis, one per line; re-read while running")
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option("--audit-log", help="file for the JSON audit lines (default: stderr)")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="path prefix the gateway is reached under, e.g. /gpu-b (default: none)")
    ] = "",
    aud: AudienceOpt = "harness-gateway",
    iss: IssuerOpt = "harness",
    leeway: Annotated[float, typer.Option("--leeway", help="clock leeway in seconds, at most 60")] = 30.0,
    max_ttl: MaxTtlOpt = "24h",
    max_body: Annotated[int, typer.Option("--max-body", help="largest request body in bytes")] = 1 << 20,
    rate: Annotated[float, typer.Option("--rate", help="requests per second per subject")] = 10.0,
    burst: Annotated[float, typer.Option("--burst", help="burst size per subject")] = 20.0,
    max_upstream: Annotated[int, typer.Option("--max-upstream", help="concurrent upstream requests")] = 64,
    header_timeout: Annotated[float, typer.Option("--header-timeout", help="seconds to send a whole request")] = 10.0,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", help="seconds to connect to an upstream before a 504")
    ] = 5.0,
    upstream_timeout: Annotated[
        float, typer.Option("--upstream-timeout", help="seconds of upstream silence before a 504")
    ] = 300.0,
) -> None:
    """Serve the gateway: check signed tokens, pass inference routes to the upstreams, refuse everything else."""
    from harness.gateway.keys import load_keyset, resolve_keys_path
    from harness.gateway.server import local_gateway
    from harness.gateway.settings import GatewaySettings, Limits, check_upstream_url, default_allowed_hosts
    from harness.gateway.tokens import TokenPolicy

    # Check everything that can be checked before taking the port, so a bad flag never half-starts a server.
    for url in upstream:
        check_upstream_url(url)
    keyset = load_keyset(resolve_keys_path(keys))
    policy = TokenPolicy(audience=aud, issuer=iss, leeway_s=leeway, max_ttl_s=parse_duration(max_ttl, "--max-ttl"))
    limits = Limits(
        max_body_bytes=max_body,
        rate_per_s=rate,
        burst=burst,
        max_upstream=max_upstream,
        header_timeout_s=header_timeout,
        connect_timeout_s=connect_timeout,
        upstream_timeout_s=upstream_timeout,
    )

    def settings_for(bound_port: int) -> GatewaySettings:
        return GatewaySettings(
            upstreams=tuple(upstream),
            allowed_hosts=default_allowed_hosts(bound_port, allow_host or []),
            policy=policy,
            limits=limits,
            openai=openai,
            deny_list=deny_list,
            audit_log=audit_log,
            prefix=prefix,
        )

    server = local_gateway(settings_for, keyset, host=host, port=port)
    settings = server.app.settings
    errors.print(
        f"gateway on http://{host}:{server.port} for {len(settings.upstreams)} upstream(s); "
        f"{len(keyset.keys)} key(s); Host allow-list: {', '.join(sorted(settings.allowed_hosts))}",
        markup=False,
        highlight=False,
    )
    server.run()
