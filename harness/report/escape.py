"""Keep untrusted text as text in Markdown and HTML.

Answers, server error bodies, suite strings and file names reach the reports. In Markdown every character that could
start markup is backslash-escaped (CommonMark allows that for any ASCII punctuation), cells and inline text are put on
one line, and code spans get a fence longer than any backtick run inside them. The HTML report renders that Markdown
with raw HTML off, and anything written straight into HTML goes through :func:`html_text`.
"""

from __future__ import annotations

import html
import re

# Characters that can open inline markup (emphasis, code, links, autolinks, raw HTML, entities) or end a table cell.
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]<>|&!~{}]|(?<![^\W_])_|_(?![^\W_]))")
# An underscore between two letters or digits can neither open nor close emphasis (CommonMark's flanking rules), so
# ``ANTHROPIC_API_KEY`` stays readable in the Markdown file.
# At the start of a line these open a block (heading, list, quote, thematic break, ordered list).
_BLOCK_START = re.compile(r"^(\s*)(\d+(?=[.)])|)([#+\-=>.)])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")


def one_line(text: str) -> str:
    """Collapse line breaks and tabs to single spaces, so text cannot end a table row or start a block."""
    return _LINE_BREAKS.sub(" ", text)


def md_text(text: object) -> str:
    """Untrusted text as inline Markdown that renders to exactly that text."""
    flat = one_line(str(text))
    escaped = _INLINE_SPECIAL.sub(r"\\\1", flat)
    return _BLOCK_START.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), escaped)


def md_code(text: object) -> str:
    """Untrusted text as a Markdown code span: fenced by more backticks than the longest run inside it."""
    flat = one_line(str(text))
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def html_text(text: object) -> str:
    """Untrusted text for an HTML element's content or a quoted attribute value."""
    return html.escape(str(text), quote=True)
