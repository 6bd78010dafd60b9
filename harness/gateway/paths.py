"""The route registry and the path check: which requests may pass, matched exactly on the normalised path. Pure.

A client that speaks the Ollama or OpenAI API never needs to percent-encode, double a slash or use dot segments in
these paths, so a path that is not already in canonical form is refused outright rather than "cleaned" and
forwarded: the upstream might normalise differently from us (a parser differential is how path allow-lists are
bypassed). The normalised form is still computed, so the audit log shows what such a path was aiming at.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

Family = Literal["ollama", "openai"]


@dataclass(frozen=True)
class Route:
    """One allowed request: its method, exact path, the token scope it needs, and its API family."""

    method: str
    path: str
    scope: str
    family: Family = "ollama"


# The one registry of what passes. Everything else (pull, push, create, delete, copy, blobs, ...) is refused.
ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/generate", "generate"),
    Route("POST", "/api/chat", "chat"),
    Route("POST", "/api/embed", "embed"),
    Route("GET", "/api/tags", "models"),
    Route("GET", "/api/version", "models"),
    Route("POST", "/v1/chat/completions", "chat", "openai"),
    Route("POST", "/v1/completions", "generate", "openai"),
    Route("GET", "/v1/models", "models", "openai"),
)

# Decoding more layers than this is itself a sign of an attack; the path is refused either way.
_MAX_DECODE_ROUNDS = 4


@dataclass(frozen=True)
class PathCheck:
    """What the path check found.

    Attributes:
        normalised: the path after percent-decoding (repeatedly), slash collapsing and dot-segment removal.
        canonical: True when the raw path already equals its normalised form and holds no odd characters.
    """

    normalised: str
    canonical: bool


def check_path(raw_path: bytes) -> PathCheck:
    """Normalise the raw request path (as sent, before any server decoding) and say whether it was canonical."""
    text = raw_path.decode("latin-1")
    decoded = text
    for _ in range(_MAX_DECODE_ROUNDS):
        step = unquote(decoded, encoding="latin-1")
        if step == decoded:
            break
        decoded = step
    unified = decoded.replace("\\", "/")
    normalised = posixpath.normpath("/" + unified.lstrip("/")) if unified else "/"
    # normpath keeps a leading "//"; collapse it like every other doubled slash
    while "//" in normalised:
        normalised = normalised.replace("//", "/")
    odd = any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in decoded)
    canonical = not odd and "%" not in text and text == normalised
    return PathCheck(normalised=normalised, canonical=canonical)


@dataclass(frozen=True)
class RouteTable:
    """The routes this gateway serves: the Ollama routes always, the OpenAI-compatible ones when enabled."""

    routes: dict[tuple[str, str], Route]

    @classmethod
    def build(cls, *, openai: bool) -> RouteTable:
        chosen = [r for r in ROUTES if r.family == "ollama" or openai]
        return cls({(r.method, r.path): r for r in chosen})

    def match(self, method: str, path: str) -> Route | None:
        """The route for exactly this method and path, or None."""
        return self.routes.get((method, path))

    def allows_path(self, path: str) -> bool:
        return any(p == path for _, p in self.routes)
