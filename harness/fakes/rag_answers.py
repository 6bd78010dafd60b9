"""Scripts for fake model hosts that answer RAG prompts with a known behaviour, so a test knows the truth.

- :func:`from_first_passage`: the answer is the text of passage ``[1]`` of the prompt (a model that uses its context);
- :func:`from_nothing`: the same answer whatever the prompt holds (a model that ignores its context).

They read the prompt the way the real prompt builder writes it (``[n] source: text`` lines, then ``Question:``), from
an Ollama chat body, an OpenAI chat or completion body, or an Anthropic Messages body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from harness.fakes.script import RecordedRequest, Reply

_PASSAGE = re.compile(r"^\[1\] (?:[^:\n]*: )?(?P<text>.*?)(?=\n\[2\] |\nQuestion:|\n\n|\Z)", re.MULTILINE | re.DOTALL)


def prompt_text(body: Any) -> str:
    """The prompt a request carries: the user messages of a chat body, or a completion body's ``prompt``."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    parts = []
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


def first_passage(prompt: str) -> str | None:
    """The text of passage ``[1]`` without its label, or None when the prompt has no passage."""
    match = _PASSAGE.search(prompt)
    return " ".join(match.group("text").split()) if match else None


def from_first_passage(empty: str = "The context does not say.") -> Callable[[RecordedRequest], Reply]:
    """A script whose answer is the first passage of each prompt (``empty`` when there is none)."""

    def answer(request: RecordedRequest) -> Reply:
        return Reply.ok(first_passage(prompt_text(request.body)) or empty)

    return answer


def from_nothing(text: str = "A building permit is required before any roofing work.") -> Reply:
    """The same answer to every prompt, whatever its passages say."""
    return Reply.ok(text)
