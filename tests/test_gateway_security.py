"""Every refusal the gateway makes: each test checks the status AND that the upstream fake saw nothing at all."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from _gateway import (
    CHAT_BODY,
    POLICY,
    KeyFiles,
    b64url,
    b64url_json,
    gateway_for,
    make_keys,
    raw_request,
    token_for,
    unb64url_json,
    upstream_saw_nothing,
)
from cryptography.hazmat.primitives import serialization

from harness.fakes import FakeOllama
from harness.gateway.server import GatewayServer
from harness.gateway.tokens import TOKEN_TYPE, TokenPolicy

BODY = json.dumps(CHAT_BODY).encode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def deny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deny") / "revoked.txt"
    path.write_text("# revoked tokens\nrevoked-jti-1\n")
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOllama, keys: KeyFiles, deny_file: Path) -> Iterator[GatewayServer]:
    with gateway_for([upstream], keys.verifying, deny_list=deny_file, max_body_bytes=4096, burst=10_000) as server:
        yield server


@pytest.fixture
def fake(upstream: FakeOllama, gateway: GatewayServer) -> FakeOllama:
    upstream.reset_counters()
    return upstream


def post_chat(gateway: GatewayServer, token: str | None, *, target: str = "/api/chat", **kwargs: object) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
    return raw_request(gateway.port, "POST", target, headers=headers, body=BODY, **kwargs).status  # type: ignore[arg-type]


def test_a_good_token_passes_so_the_refusals_below_mean_something(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles
) -> None:
    assert post_chat(gateway, token_for(keys.signing)) == 200
    assert len(fake.requests_to("/api/chat")) == 1


# --- tokens ------------------------------------------------------------------------------------------------------


def test_no_token(gateway: GatewayServer, fake: FakeOllama) -> None:
    response = raw_request(gateway.port, "POST", "/api/chat", body=BODY)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize("value", ["Bearer", "Bearer not.a.jwt", "Bearer abc", "Basic dXNlcjpwYXNz", "Bearer a.b.c.d"])
def test_malformed_token(gateway: GatewayServer, fake: FakeOllama, value: str) -> None:
    response = raw_request(gateway.port, "POST", "/api/chat", headers={"Authorization": value}, body=BODY)
    assert response.status == 401
    assert upstream_saw_nothing(fake)


def test_two_authorization_headers_are_refused(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    token = token_for(keys.signing)
    lines = {"Authorization": f"Bearer {token}", "authorization": f"Bearer {token}"}
    assert raw_request(gateway.port, "POST", "/api/chat", headers=lines, body=BODY).status == 401
    assert upstream_saw_nothing(fake)


def test_tampered_payload(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    header, payload, signature = token_for(keys.signing, scopes=("embed",)).split(".")
    claims = unb64url_json(payload)
    claims["scope"] = "chat generate embed models"  # escalate, keep the old signature
    assert post_chat(gateway, f"{header}.{b64url_json(claims)}.{signature}") == 401
    assert upstream_saw_nothing(fake)


def test_tampered_signature(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    header, payload, signature = token_for(keys.signing).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert post_chat(gateway, f"{header}.{payload}.{flipped}") == 401
    assert post_chat(gateway, f"{header}.{payload}.") == 401
    assert upstream_saw_nothing(fake)


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": POLICY.issuer,
        "aud": POLICY.audience,
        "sub": "ci-nightly",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "jti-test",
        "scope": "chat",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_alg_none(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    kid = keys.signing.signing_key().kid
    for alg in ("none", "None", "NONE"):
        header = b64url_json({"alg": alg, "typ": TOKEN_TYPE, "kid": kid})
        assert post_chat(gateway, f"{header}.{b64url_json(_claims())}.") == 401
    assert upstream_saw_nothing(fake)


def test_algorithm_confusion_hs256_signed_with_the_public_key(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles
) -> None:
    key = keys.signing.signing_key()
    public_pem = key.verifying.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_public = key.verifying.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    for secret in (public_pem, raw_public):
        signing_input = f"{b64url_json({'alg': 'HS256', 'typ': TOKEN_TYPE, 'kid': key.kid})}.{b64url_json(_claims())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert post_chat(gateway, f"{signing_input}.{b64url(mac)}") == 401
    assert upstream_saw_nothing(fake)


def test_embedded_jwk_header_is_refused(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    key = keys.signing.signing_key()
    token = jwt.encode(
        _claims(), key.signing, algorithm="EdDSA", headers={"kid": key.kid, "typ": TOKEN_TYPE, "jwk": {"kty": "OKP"}}
    )
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


def test_wrong_token_type_is_refused(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    key = keys.signing.signing_key()
    token = jwt.encode(_claims(), key.signing, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"})
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


def test_expired(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    assert post_chat(gateway, token_for(keys.signing, ttl_s=60, now=time.time() - 3600)) == 401
    assert upstream_saw_nothing(fake)


def test_not_yet_valid(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    assert post_chat(gateway, token_for(keys.signing, now=time.time() + 600)) == 401
    assert upstream_saw_nothing(fake)


def test_lifetime_over_the_maximum_ttl(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    key = keys.signing.signing_key()
    now = int(time.time())
    token = jwt.encode(
        _claims(exp=now + 2 * 3600), key.signing, algorithm="EdDSA", headers={"kid": key.kid, "typ": TOKEN_TYPE}
    )
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize(
    "policy",
    [
        TokenPolicy(audience="some-other-service", issuer=POLICY.issuer, max_ttl_s=3600),
        TokenPolicy(audience=POLICY.audience, issuer="someone-else", max_ttl_s=3600),
    ],
    ids=["wrong-audience", "wrong-issuer"],
)
def test_wrong_audience_or_issuer(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, policy: TokenPolicy
) -> None:
    assert post_chat(gateway, token_for(keys.signing, policy=policy)) == 401
    assert upstream_saw_nothing(fake)


def test_audience_list_is_not_accepted(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    key = keys.signing.signing_key()
    claims = _claims(aud=[POLICY.audience, "other"])
    token = jwt.encode(claims, key.signing, algorithm="EdDSA", headers={"kid": key.kid, "typ": TOKEN_TYPE})
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "aud", "iss", "sub", "jti", "scope"])
def test_missing_claim(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, missing: str) -> None:
    key = keys.signing.signing_key()
    claims = _claims(**{missing: None})
    token = jwt.encode(claims, key.signing, algorithm="EdDSA", headers={"kid": key.kid, "typ": TOKEN_TYPE})
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


def test_revoked_jti(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    assert post_chat(gateway, token_for(keys.signing, jti="revoked-jti-1")) == 401
    assert upstream_saw_nothing(fake)


def test_unknown_kid(gateway: GatewayServer, fake: FakeOllama, tmp_path: Path) -> None:
    stranger = make_keys(tmp_path)  # a different key pair, with its own kid
    assert post_chat(gateway, token_for(stranger.signing)) == 401
    assert upstream_saw_nothing(fake)


def test_known_kid_but_another_key_signed_it(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, tmp_path: Path
) -> None:
    stranger = make_keys(tmp_path).signing.signing_key()
    kid = keys.signing.signing_key().kid
    token = jwt.encode(_claims(), stranger.signing, algorithm="EdDSA", headers={"kid": kid, "typ": TOKEN_TYPE})
    assert post_chat(gateway, token) == 401
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize(
    ("scopes", "method", "target"),
    [
        (("embed",), "POST", "/api/chat"),
        (("chat",), "POST", "/api/generate"),
        (("chat", "generate"), "GET", "/api/tags"),
    ],
)
def test_scope_that_does_not_cover_the_route(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, scopes: tuple[str, ...], method: str, target: str
) -> None:
    token = token_for(keys.signing, scopes=scopes)
    body = BODY if method == "POST" else None
    response = raw_request(gateway.port, method, target, headers={"Authorization": f"Bearer {token}"}, body=body)
    assert response.status == 403
    assert upstream_saw_nothing(fake)


# --- request shape -----------------------------------------------------------------------------------------------


def test_token_in_the_query_string(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    token = token_for(keys.signing)
    assert post_chat(gateway, None, target=f"/api/chat?access_token={token}") == 400
    assert post_chat(gateway, token, target=f"/api/chat?token={token}") == 400
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize("host", ["evil.example.com", "attacker.test:80", "127.0.0.1", "gateway.example.test.evil.com"])
def test_foreign_host_header(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, host: str) -> None:
    assert post_chat(gateway, token_for(keys.signing), host=host) == 421
    assert upstream_saw_nothing(fake)


def test_allowed_host_name_passes(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    assert post_chat(gateway, token_for(keys.signing), host="gateway.example.test") == 200


def test_oversized_body_by_content_length(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    response = raw_request(gateway.port, "POST", "/api/chat", headers=headers, body=b"x" * 5000)
    assert response.status == 413
    assert upstream_saw_nothing(fake)


def test_oversized_chunked_body(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    response = raw_request(gateway.port, "POST", "/api/chat", headers=headers, chunks=[b"y" * 1000] * 6)
    assert response.status == 413
    assert upstream_saw_nothing(fake)


def test_chunked_body_within_the_limit_passes(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    pieces = [BODY[:10], BODY[10:40], BODY[40:]]
    response = raw_request(gateway.port, "POST", "/api/chat", headers=headers, chunks=pieces)
    assert response.status == 200
    assert fake.requests_to("/api/chat")[0].body == CHAT_BODY


# --- routes ------------------------------------------------------------------------------------------------------

FORBIDDEN_CANONICAL = [
    ("POST", "/api/pull"),
    ("POST", "/api/push"),
    ("POST", "/api/create"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/copy"),
    ("POST", "/api/blobs/sha256:29fdb92e57cf0827ded04ae6461b5931d01fa595843f55d36f5b275a52087dd2"),
    ("HEAD", "/api/blobs/sha256:29fdb92e57cf0827ded04ae6461b5931d01fa595843f55d36f5b275a52087dd2"),
    ("POST", "/api/show"),
    ("GET", "/api/ps"),
    ("GET", "/"),
    ("POST", "/v1/chat/completions"),  # OpenAI routes pass only when configured
    ("POST", "/API/PULL"),
    ("POST", "/Api/Pull"),
    ("POST", "/api/Chat"),
    ("POST", "/API/CHAT"),
    ("POST", "/api/chatx"),
    ("POST", "/api/chat/extra"),
    ("POST", "/api"),
]

NON_CANONICAL = [
    "/api/%70ull",
    "/api/%70%75%6c%6c",
    "/api%2Fpull",
    "/api%2fpull",
    "/api/%2570ull",  # double-encoded
    "/api/%252570ull",  # triple-encoded
    "/api/chat/../pull",
    "/api/chat/%2e%2e/pull",
    "/api/chat/%2E%2E/pull",
    "/api/chat/.%2e/pull",
    "/api/chat%2F..%2Fpull",
    "/api/chat/%252e%252e/pull",
    "/api/./pull",
    "/./api/pull",
    "/api/pull/.",
    "//api/pull",
    "/api//pull",
    "///api/pull",
    "/api/pull%00",
    "/api/pull%20",
    "/api/%50ULL",
    "/api/%63hat",  # even an allowed route, when encoded: only the canonical spelling passes
    "//api/chat",
    "/api/./chat",
    "/api/generate/../chat",
    "/api/chat/",  # a trailing slash is not the route's spelling either
]


@pytest.mark.parametrize(("method", "target"), FORBIDDEN_CANONICAL)
def test_forbidden_route_with_a_valid_token(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, method: str, target: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    body = BODY if method in ("POST", "DELETE") else None
    response = raw_request(gateway.port, method, target, headers=headers, body=body)
    assert response.status == 404
    assert upstream_saw_nothing(fake)


@pytest.mark.parametrize("target", NON_CANONICAL)
def test_encoded_and_traversal_variants_are_refused(
    gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles, target: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    response = raw_request(gateway.port, "POST", target, headers=headers, body=BODY)
    assert response.status == 400
    assert upstream_saw_nothing(fake)


def test_forbidden_route_without_a_token_is_401_and_reveals_nothing(gateway: GatewayServer, fake: FakeOllama) -> None:
    response = raw_request(gateway.port, "POST", "/api/pull", body=b'{"name": "evil/model"}')
    assert response.status == 401
    assert upstream_saw_nothing(fake)


def test_wrong_method_on_an_allowed_path(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    assert raw_request(gateway.port, "GET", "/api/chat", headers=headers).status == 405
    assert raw_request(gateway.port, "POST", "/api/tags", headers=headers, body=b"{}").status == 405
    assert upstream_saw_nothing(fake)


def test_absolute_form_target_is_judged_by_its_path(gateway: GatewayServer, fake: FakeOllama, keys: KeyFiles) -> None:
    headers = {"Authorization": f"Bearer {token_for(keys.signing)}"}
    response = raw_request(gateway.port, "POST", "http://127.0.0.1:11434/api/pull", headers=headers, body=BODY)
    assert response.status in (400, 404)
    assert upstream_saw_nothing(fake)
