"""The report as a document: a title, a verdict, then sections of blocks; rendered to Markdown here, to HTML in
:mod:`harness.report.html_page`.

Every string a block holds is Markdown whose untrusted parts are escaped already (:mod:`harness.report.escape`);
``html`` overrides are built with :func:`~harness.report.escape.html_text` only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.report.escape import md_text


@dataclass
class Chart:
    """A chart drawn from the table beside it; ``draw`` returns a base64 PNG, or ``None`` when there is nothing to
    draw. Drawn only for the HTML page."""

    alt: str
    draw: Callable[[], str | None]


@dataclass
class Block:
    """Markdown (always), an optional chart of the same data, and an optional HTML rendering of it for the page."""

    markdown: str
    chart: Chart | None = None
    html: str | None = None


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return anchor(self.title)

    def add(self, markdown: str, chart: Chart | None = None, html: str | None = None) -> None:
        self.blocks.append(Block(markdown, chart, html))


@dataclass
class Report:
    title: str
    verdict: list[str]
    sections: list[Section]
    banner: str | None = None
    """Markdown shown straight under the title, for a run that failed."""


def anchor(title: str) -> str:
    """A stable id of letters, digits and dashes: safe in HTML and in a Markdown link."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def to_markdown(report: Report) -> str:
    out = [f"# {md_text(report.title)}\n\n"]
    if report.banner:
        out.append(f"{report.banner}\n\n")
    out += ["## Verdict\n\n", "".join(f"- {line}\n" for line in report.verdict)]
    out.append("\n## Contents\n\n")
    for section in report.sections:
        indent = "  " * (section.level - 2)
        out.append(f"{indent}- [{md_text(section.title)}](#{section.anchor})\n")
    for section in report.sections:
        out.append(f"\n{'#' * section.level} {md_text(section.title)}\n")
        for block in section.blocks:
            out.append("\n" + block.markdown.rstrip("\n") + "\n")
    return "".join(out)
