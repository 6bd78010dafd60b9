"""Tokens, key files, paths and rate limits, without a server."""

from __future__ import annotations

import json
import math
import os
import random
import stat
import time
from pathlib import Path

import jwt
import pytest
from _gateway import POLICY, make_keys, token_for

from harness.errors import ConfigError, InputError
from harness.gateway.keys import check_private_file, keygen, load_keyset, public_path
from harness.gateway.paths import ROUTES, RouteTable, check_path
from harness.gateway.ratelimit import RateLimiter, retry_after_header
from harness.gateway.tokens import (
    TOKEN_TYPE,
    TokenPolicy,
    TokenRejected,
    VerifiedTokens,
    mint,
    parse_scopes,
    verify,
)

# --- tokens ------------------------------------------------------------------------------------------------------


def test_minted_token_is_a_standard_eddsa_jwt_that_pyjwt_verifies_on_its_own(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    token = token_for(keys.signing, scopes=("chat", "generate"), subject="ci-nightly", ttl_s=600)
    key = next(iter(keys.verifying.keys.values()))
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": TOKEN_TYPE}
    claims = jwt.decode(token, key.verifying, algorithms=["EdDSA"], audience=POLICY.audience, issuer=POLICY.issuer)
    assert set(claims) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "scope"}
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["scope"] == "chat generate"
    verified = verify(token, keys.verifying, POLICY)
    assert (verified.sub, verified.scopes, verified.kid, verified.jti) == (
        "ci-nightly",
        frozenset({"chat", "generate"}),
        key.kid,
        claims["jti"],
    )


def test_each_token_gets_its_own_jti(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    jtis = {verify(token_for(keys.signing), keys.verifying, POLICY).jti for _ in range(50)}
    assert len(jtis) == 50


def test_leeway_tolerates_small_skew_only(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    skewed = token_for(keys.signing, now=time.time() + 20)  # a signer whose clock runs 20 s fast
    assert verify(skewed, keys.verifying, POLICY).sub == "ci-nightly"
    far = token_for(keys.signing, now=time.time() + 120)
    with pytest.raises(TokenRejected, match="not yet valid"):
        verify(far, keys.verifying, POLICY)
    just_expired = token_for(keys.signing, ttl_s=60, now=time.time() - 75)  # expired 15 s ago: within leeway
    assert verify(just_expired, keys.verifying, POLICY).sub == "ci-nightly"
    long_expired = token_for(keys.signing, ttl_s=60, now=time.time() - 200)
    with pytest.raises(TokenRejected, match="expired"):
        verify(long_expired, keys.verifying, POLICY)


def test_revoked_jti_is_rejected_and_the_message_never_holds_the_token(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    token = token_for(keys.signing, jti="leaked")
    with pytest.raises(TokenRejected) as info:
        verify(token, keys.verifying, POLICY, frozenset({"leaked"}))
    assert info.value.reason == "revoked"
    assert token not in str(info.value) and token.split(".")[2] not in str(info.value)


def test_verified_token_cache_still_checks_revocation_expiry_and_exact_text(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    cache = VerifiedTokens()
    token = token_for(keys.signing, jti="cached")
    assert cache.verify_cached(token, keys.verifying, POLICY).jti == "cached"
    assert cache.verify_cached(token, keys.verifying, POLICY).jti == "cached"  # from the cache
    with pytest.raises(TokenRejected, match="revoked"):
        cache.verify_cached(token, keys.verifying, POLICY, frozenset({"cached"}))
    with pytest.raises(TokenRejected):
        cache.verify_cached(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), keys.verifying, POLICY)
    strict = TokenPolicy(audience=POLICY.audience, issuer=POLICY.issuer, leeway_s=0, max_ttl_s=60)
    short = token_for(keys.signing, ttl_s=1, policy=strict)
    assert cache.verify_cached(short, keys.verifying, strict).sub == "ci-nightly"
    time.sleep(2.1)  # let it expire (the assertion is about expiry, not about speed)
    with pytest.raises(TokenRejected, match="expired"):
        cache.verify_cached(short, keys.verifying, strict)


def test_policy_bounds_leeway_and_ttl() -> None:
    with pytest.raises(InputError, match="leeway"):
        TokenPolicy(leeway_s=61)
    with pytest.raises(InputError, match="TTL"):
        TokenPolicy(max_ttl_s=0)


def test_mint_refuses_a_ttl_over_the_maximum_and_public_keys(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    with pytest.raises(InputError, match="TTL"):
        mint(keys.signing.signing_key(), subject="x", scopes=["chat"], ttl_s=POLICY.max_ttl_s + 1, policy=POLICY)
    with pytest.raises(InputError, match="public"):
        keys.verifying.signing_key()


def test_scopes_parse_from_commas_or_spaces_and_unknown_ones_are_named() -> None:
    assert parse_scopes("generate,chat") == parse_scopes("chat generate") == frozenset({"chat", "generate"})
    with pytest.raises(InputError, match="pull"):
        parse_scopes("chat,pull")
    with pytest.raises(InputError):
        parse_scopes(" , ")


def test_every_route_needs_a_scope_a_token_can_carry() -> None:
    assert {route.scope for route in ROUTES} <= set(parse_scopes("generate chat embed models"))


# --- key files ---------------------------------------------------------------------------------------------------


def test_keygen_writes_private_and_public_files_mode_0600_and_rotation_appends(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first, pub = keygen(path, "EdDSA")
    second, _ = keygen(path, "EdDSA")
    assert pub == public_path(path)
    for file in (path, pub):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    private, public = load_keyset(path), load_keyset(pub)
    assert list(private.keys) == list(public.keys) == [first, second]
    assert private.signing_key().kid == second  # the newest key signs
    assert all(key.signing is None for key in public.keys.values())
    assert "PRIVATE" not in pub.read_text()


def test_hs256_key_file_has_no_public_half(tmp_path: Path) -> None:
    kid, pub = keygen(tmp_path / "hs.json", "HS256")
    assert pub is None
    assert load_keyset(tmp_path / "hs.json").signing_key().alg == "HS256"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    keygen(path, "EdDSA")
    os.chmod(path, mode)
    with pytest.raises(InputError, match="chmod 600") as info:
        load_keyset(path)
    assert str(path) in info.value.message


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as info:
        check_private_file(tmp_path / "nope.json")
    assert "keygen" in info.value.hint


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"keys": []}, "keys"),
        ({"keys": [{"kid": "a", "alg": "RS256", "secret": "x"}]}, "keys[0].alg"),
        ({"keys": [{"kid": "", "alg": "HS256", "secret": "x"}]}, "keys[0].kid"),
        ({"keys": [{"kid": "a", "alg": "HS256", "secret": "c2hvcnQ"}]}, "keys[0].secret"),
        ({"keys": [{"kid": "a", "alg": "EdDSA", "public_key": "not a pem"}]}, "keys[0]"),
    ],
)
def test_malformed_key_file_names_the_field(tmp_path: Path, document: object, field: str) -> None:
    path = tmp_path / "keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(document).encode())
    os.close(fd)
    with pytest.raises(ConfigError) as info:
        load_keyset(path)
    assert info.value.field == field


# --- paths -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised", "canonical"),
    [
        ("/api/chat", "/api/chat", True),
        ("/api/%63hat", "/api/chat", False),
        ("/api/%2563hat", "/api/chat", False),
        ("/api/chat/../pull", "/api/pull", False),
        ("/api/chat/%2e%2e/pull", "/api/pull", False),
        ("//api/pull", "/api/pull", False),
        ("/api//pull", "/api/pull", False),
        ("/api\\pull", "/api/pull", False),
        ("/API/PULL", "/API/PULL", True),
        ("/", "/", True),
        ("/../../etc/passwd", "/etc/passwd", False),
    ],
)
def test_check_path(raw: str, normalised: str, canonical: bool) -> None:
    check = check_path(raw.encode())
    assert (check.normalised, check.canonical) == (normalised, canonical)


def test_route_table_matches_exactly_and_openai_routes_only_when_enabled() -> None:
    ollama_only, with_openai = RouteTable.build(openai=False), RouteTable.build(openai=True)
    assert ollama_only.match("POST", "/api/chat") is not None
    assert ollama_only.match("POST", "/api/chat/") is None and ollama_only.match("POST", "/API/CHAT") is None
    assert ollama_only.match("POST", "/v1/chat/completions") is None
    assert with_openai.match("POST", "/v1/chat/completions") is not None
    assert ollama_only.match("POST", "/api/pull") is None and with_openai.match("POST", "/api/pull") is None


# --- rate limits -------------------------------------------------------------------------------------------------


def test_token_bucket_grants_burst_then_rate_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("s", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("s", 0.0) == pytest.approx(0.5)
    assert limiter.take("s", 0.25) == pytest.approx(0.25)
    assert limiter.take("s", 0.5) == 0.0
    assert limiter.take("other", 0.5) == 0.0  # subjects do not share buckets
    assert retry_after_header(0.25) == "1" and retry_after_header(2.01) == "3"


def test_token_bucket_matches_its_closed_form_over_a_random_arrival_simulation() -> None:
    # Known truth: over [0, T] a bucket admits at most burst + rate * T requests, and a client that always has a
    # request waiting is admitted exactly floor(burst + rate * T) times.
    rng = random.Random(7)
    rate, burst, horizon = 3.0, 5, 40.0
    limiter = RateLimiter(rate=rate, burst=burst)
    now, granted = 0.0, 0
    while now <= horizon:
        granted += limiter.take("greedy", now) == 0.0
        now += rng.expovariate(200.0)  # far faster than the rate: always a request waiting
    assert granted == math.floor(burst + rate * horizon) or granted == math.floor(burst + rate * horizon) - 1
    # a client that obeys Retry-After is admitted every time it comes back
    obeying = RateLimiter(rate=rate, burst=1)
    t, refusals = 0.0, 0
    for _ in range(200):
        wait = obeying.take("polite", t)
        if wait:
            refusals += 1
            t += wait
            assert obeying.take("polite", t) == 0.0
        t += rng.uniform(0, 0.2)
    assert refusals > 0


def test_limiter_forgets_the_least_recent_subjects_past_its_bound() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_subjects=3)
    for name in "abcd":
        limiter.take(name, 0.0)
    assert limiter.take("a", 0.0) == 0.0  # forgotten, so a fresh bucket
    assert limiter.take("d", 0.0) > 0
