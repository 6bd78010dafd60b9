"""Mint and verify the gateway's signed tokens, following RFC 8725 (JWT best current practices).

Pure: keys arrive already loaded (``harness.gateway.keys`` reads files), the clock is PyJWT's ``time.time()``.

What verification enforces, and why:

- the ``kid`` header selects the key and each key pins one algorithm, so a token cannot choose its own
  algorithm: ``alg: none`` and HS256-signed-with-a-public-key (algorithm confusion) fail the pin (RFC 8725 §3.1);
- explicit typing, ``typ: gw+jwt``, so a JWT minted for some other purpose is not accepted here (§3.11);
- ``exp iat nbf aud iss sub jti scope`` are required; ``aud`` and ``iss`` must match exactly (§3.8, §3.9);
- clock leeway of at most 60 s, and ``exp - iat`` no longer than the maximum TTL, so a leaked token dies soon;
- headers that would let a token bring its own key (``jwk``, ``jku``, ``x5u``, ``x5c``) or demand extensions
  (``crit``) are refused outright.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.errors import HarnessError, InputError

Algorithm = Literal["EdDSA", "HS256"]
ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "HS256")
TOKEN_TYPE = "gw+jwt"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "aud", "iss", "sub", "jti", "scope")
MAX_LEEWAY_S = 60.0
# Headers with which a token could name its own key or force extensions we do not implement.
_REFUSED_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")
# Scopes a token can carry; the route registry in ``paths`` maps each route to one of them.
SCOPES = ("generate", "chat", "embed", "models")


class TokenRejected(HarnessError):
    """A presented token is not acceptable. The message says why and never contains the token."""

    exit_code = 2

    def __init__(self, reason: str) -> None:
        super().__init__(f"token rejected: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Key:
    """One key of a key set. ``signing`` is None when only verification is possible (an EdDSA public key)."""

    kid: str
    alg: Algorithm
    verifying: Ed25519PublicKey | bytes
    signing: Ed25519PrivateKey | bytes | None = None


@dataclass(frozen=True)
class KeySet:
    """Keys by kid, in file order. The last key that can sign is the one new tokens are signed with."""

    keys: Mapping[str, Key]

    def signing_key(self, kid: str | None = None) -> Key:
        """The key to sign with: ``kid`` if given, else the newest key that can sign.

        Raises:
            InputError: no such kid, or the key set holds only public keys.
        """
        if kid is not None:
            key = self.keys.get(kid)
            if key is None:
                raise InputError(f"no key with kid {kid!r}", hint=f"known kids: {', '.join(self.keys) or 'none'}")
            if key.signing is None:
                raise InputError(f"key {kid!r} is a public key and cannot sign", hint="use the private key file")
            return key
        signers = [key for key in self.keys.values() if key.signing is not None]
        if not signers:
            raise InputError(
                "the key set holds no signing key (public keys only)",
                hint="mint tokens with the private key file written by `harness gateway keygen`",
            )
        return signers[-1]


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must say to be accepted here.

    Args:
        audience: the exact ``aud`` this gateway accepts.
        issuer: the exact ``iss`` this gateway accepts.
        leeway_s: clock skew tolerated on ``exp``/``nbf``/``iat``, at most 60 s.
        max_ttl_s: the longest ``exp - iat`` accepted (and minted).
    """

    audience: str = "harness-gateway"
    issuer: str = "harness"
    leeway_s: float = 30.0
    max_ttl_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise InputError(
                f"leeway {self.leeway_s:g} s is outside 0..{MAX_LEEWAY_S:g} s", hint="use a leeway of 60 s or less"
            )
        if self.max_ttl_s <= 0:
            raise InputError(f"maximum TTL {self.max_ttl_s:g} s must be positive", hint="e.g. 86400 for one day")


@dataclass(frozen=True)
class Claims:
    """The claims of a verified token that the gateway uses."""

    sub: str
    jti: str
    scopes: frozenset[str]
    kid: str
    exp: float
    extra: Mapping[str, Any] = field(default_factory=dict)


class VerifiedTokens:
    """Tokens already verified, by their exact text, so a client's repeated requests skip the signature check.

    Safe because keys do not change while a gateway runs and the entry is keyed on the whole signed token: any
    change to it is a miss. Expiry and the deny-list are still checked on every request (``verify_cached``).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._claims: OrderedDict[str, Claims] = OrderedDict()

    def verify_cached(
        self, token: str, keys: KeySet, policy: TokenPolicy, denied_jtis: frozenset[str] = frozenset()
    ) -> Claims:
        """As ``verify``, answered from the cache when this exact token passed before and has not expired since."""
        claims = self._claims.get(token)
        if claims is not None and time.time() <= claims.exp + policy.leeway_s:
            self._claims.move_to_end(token)
            if claims.jti in denied_jtis:
                raise TokenRejected("revoked")
            return claims
        self._claims.pop(token, None)
        claims = verify(token, keys, policy, denied_jtis)
        self._claims[token] = claims
        if len(self._claims) > self.size:
            self._claims.popitem(last=False)
        return claims


def parse_scopes(text: str) -> frozenset[str]:
    """``"generate,chat"`` or ``"generate chat"`` → the scope set; an unknown scope is an InputError."""
    scopes = frozenset(part for part in text.replace(",", " ").split() if part)
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InputError(
            f"unknown or empty scope: {', '.join(unknown) or repr(text)}", hint=f"scopes are: {', '.join(SCOPES)}"
        )
    return scopes


def mint(
    key: Key,
    *,
    subject: str,
    scopes: Iterable[str],
    ttl_s: float,
    policy: TokenPolicy,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """A signed token for ``subject`` with ``scopes``, valid from ``now`` for ``ttl_s`` seconds.

    Raises:
        InputError: the TTL is not positive or exceeds the policy's maximum, the subject is empty, or the key
            cannot sign.
    """
    if key.signing is None:
        raise InputError(f"key {key.kid!r} is a public key and cannot sign", hint="use the private key file")
    if not 0 < ttl_s <= policy.max_ttl_s:
        raise InputError(
            f"TTL {ttl_s:g} s is outside 0..{policy.max_ttl_s:g} s",
            hint="choose a shorter --ttl, e.g. 1h; long-lived tokens are what revocation cannot keep up with",
        )
    if not subject.strip():
        raise InputError("the subject (--sub) is empty", hint="name who the token is for, e.g. ci-nightly")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_s),
        "jti": jti or secrets.token_urlsafe(16),
        "scope": " ".join(sorted(parse_scopes(" ".join(scopes)))),
    }
    return jwt.encode(claims, key.signing, algorithm=key.alg, headers={"kid": key.kid, "typ": TOKEN_TYPE})


def verify(token: str, keys: KeySet, policy: TokenPolicy, denied_jtis: frozenset[str] = frozenset()) -> Claims:
    """The token's claims, if its signature, header, and claims all pass; else TokenRejected with the reason."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected("malformed token") from exc
    key = _pinned_key(header, keys)
    try:
        payload = jwt.decode(
            token,
            key.verifying,
            algorithms=[key.alg],
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected("expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenRejected("not yet valid (nbf or iat in the future)") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"missing required claim {exc.claim}") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenRejected("wrong audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRejected("wrong issuer") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenRejected("bad signature") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"invalid token ({type(exc).__name__})") from exc
    return _checked_claims(payload, key.kid, policy, denied_jtis)


def _pinned_key(header: Mapping[str, Any], keys: KeySet) -> Key:
    refused = [name for name in _REFUSED_HEADERS if name in header]
    if refused:
        raise TokenRejected(f"header field {refused[0]} is not accepted")
    if header.get("typ") != TOKEN_TYPE:
        raise TokenRejected("wrong token type (typ)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("no kid in the header")
    key = keys.keys.get(kid)
    if key is None:
        raise TokenRejected("unknown kid")
    if header.get("alg") != key.alg:
        raise TokenRejected("algorithm does not match the key's pinned algorithm")
    return key


def _checked_claims(payload: Mapping[str, Any], kid: str, policy: TokenPolicy, denied: frozenset[str]) -> Claims:
    sub, jti, scope = payload["sub"], payload["jti"], payload["scope"]
    if not isinstance(sub, str) or not sub:
        raise TokenRejected("sub must be a non-empty string")
    if not isinstance(jti, str) or not jti:
        raise TokenRejected("jti must be a non-empty string")
    if not isinstance(scope, str):
        raise TokenRejected("scope must be a space-separated string")
    iat, exp = payload["iat"], payload["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise TokenRejected("iat and exp must be numbers")
    if iat > time.time() + policy.leeway_s:
        raise TokenRejected("not yet valid (nbf or iat in the future)")
    if exp - iat > policy.max_ttl_s:
        raise TokenRejected("lifetime exceeds the maximum TTL")
    if jti in denied:
        raise TokenRejected("revoked")
    extra = {k: v for k, v in payload.items() if k not in REQUIRED_CLAIMS}
    return Claims(sub=sub, jti=jti, scopes=frozenset(scope.split()), kid=kid, exp=float(exp), extra=extra)
