"""The one reader of the Anthropic API key. It lives apart from the SDK client so that asking whether a key is set
does not import the ``anthropic`` package."""

from __future__ import annotations

import os

API_KEY_ENV = "ANTHROPIC_API_KEY"


def anthropic_api_key() -> str | None:
    """``$ANTHROPIC_API_KEY`` without surrounding whitespace (a pasted key often ends in a newline); ``None`` when it
    is unset or blank, so a blank key skips the cloud tier and the grader instead of failing every call with a 401."""
    return os.environ.get(API_KEY_ENV, "").strip() or None
