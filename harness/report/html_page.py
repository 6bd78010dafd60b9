"""The report as one self-contained HTML page: title, verdict, contents, then each section, with each chart beside
the table it draws (inline PNG), and long error texts folded.

Markdown is rendered with raw HTML off; the page's own markup is written here with every text escaped.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

from harness.report.document import Block, Report
from harness.report.escape import html_text

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}code{background:#f5f5f5;padding:0 3px}
.verdict{border:1px solid #bbb;border-left:6px solid #4c78a8;padding:.2em 1em;background:#fafafa}
.failed{color:#a00}
.pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}.pair>div{flex:1 1 420px;overflow-x:auto}
figure{margin:0;flex:0 1 520px}figure img{max-width:100%}figcaption{font-size:12px;color:#555}
details div{white-space:pre-wrap;text-align:left;max-width:60em}summary{cursor:pointer;text-align:left}
nav ul{margin:.2em 0}
"""


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def to_html(report: Report) -> str:
    md = _markdown()
    title = html_text(report.title)
    verdict = "".join(f"<li>{md.renderInline(line)}</li>" for line in report.verdict)
    banner = f"<p class='failed'>{md.renderInline(report.banner)}</p>" if report.banner else ""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{title}</h1></header>",
        f"<section id='verdict' class='verdict'><h2>Verdict</h2>{banner}<ul>{verdict}</ul></section>",
        _contents(report),
        "<main>",
    ]
    for section in report.sections:
        level = min(max(section.level, 2), 3)
        parts.append(f"<section id='{section.anchor}'><h{level}>{html_text(section.title)}</h{level}>")
        parts.extend(_block(md, block) for block in section.blocks)
        parts.append("</section>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _contents(report: Report) -> str:
    items: list[str] = []
    open_sub = False
    for section in report.sections:
        link = f"<a href='#{section.anchor}'>{html_text(section.title)}</a>"
        if section.level > 2:
            if not open_sub:
                items.append("<ul>")
                open_sub = True
            items.append(f"<li>{link}</li>")
            continue
        if open_sub:
            items.append("</ul></li>")
            open_sub = False
        elif items:
            items.append("</li>")
        items.append(f"<li>{link}")
    items.append("</ul></li>" if open_sub else "</li>" if items else "")
    return f"<nav id='contents'><h2>Contents</h2><ul>{''.join(items)}</ul></nav>"


def _block(md: MarkdownIt, block: Block) -> str:
    body = block.html if block.html is not None else md.render(block.markdown)
    png = block.chart.draw() if block.chart is not None else None
    if block.chart is None or png is None:
        return f"<div class='block'>{body}</div>"
    alt = html_text(block.chart.alt)
    figure = (
        f"<figure><img alt='{alt}' src='data:image/png;base64,{png}'>"
        f"<figcaption>{alt}</figcaption></figure>"
    )
    return f"<div class='pair'><div>{body}</div>{figure}</div>"
