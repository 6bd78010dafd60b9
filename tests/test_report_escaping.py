"""Untrusted text stays text in both reports.

A fleet host (a loopback fake speaking llama.cpp's protocol) answers with markup and fails with markup in its error
body; the suite's questions, categories, tags and references carry markup too. The HTML report must hold no live
markup (only the report's own tags, no event-handler attributes, no script), and the Markdown report must render,
with raw HTML off, to exactly the same safe HTML.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _suites import generation, variants, write_suite
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeOpenAI, Reply
from harness.fakes.script import RecordedRequest
from harness.report.escape import md_code, md_text

SCRIPT = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
IMG = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"
PAYLOAD = f"{SCRIPT} {IMG} [click](javascript:alert(1)) | pipe `tick` **bold**\n# heading &lt;b&gt;"

# The tags the report itself writes; anything else came from untrusted text and is a defect.
REPORT_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "nav", "main", "section", "div", "h1", "h2", "h3",
    "p", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "code", "strong", "em", "figure",
    "figcaption", "img", "details", "summary", "span", "br",
}  # fmt: skip


class TagAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.bad_attributes: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            live_url = name in {"href", "src"} and value is not None and not value.startswith(("#", "data:image/"))
            if name.startswith("on") or live_url or name in {"style", "srcdoc", "formaction"}:
                self.bad_attributes.append((tag, name, value))


def audit(html: str) -> TagAudit:
    parser = TagAudit()
    parser.feed(html)
    return parser


def hostile(request: RecordedRequest) -> Reply:
    prompt = json.dumps(request.body)
    if "ERRORCASE" in prompt:
        return Reply.error(500, f"model crashed: {PAYLOAD}")
    return Reply.ok(PAYLOAD)


# The suite's own strings carry markup too (written as YAML strings, so they reach the run as they are here).
HOSTILE_CASES = [
    {
        "id": "marlow-ice",
        "question": "How far inside the wall? " + SCRIPT,
        "reference": "At least 36 inches " + IMG,
        "relevant": {"code-r905-1-2-marlow": 3},
        "category": "juris|<b>diction</b>",
        "tags": ["<i>tag</i>"],
        "must_include": ["36 <u>inches</u>"],
        "generate": True,
    },
    {
        "id": "valleys",
        "question": "ERRORCASE Does Marlow require ice barrier in valleys? " + IMG,
        "reference": "Yes, in every valley.",
        "relevant": {"code-r905-1-2-marlow": 3},
        "category": "# code-section",
        "generate": True,
    },
]


@pytest.fixture
def hostile_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    suite = write_suite(tmp_path / "hostile.yaml", name="hostile", metrics=["recall@5", "ndcg@5"],
                        variants=variants("bm25"), generation=generation(), cases=HOSTILE_CASES)
    with FakeOpenAI(script=hostile) as host:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(
            f"strategy: single\ntimeout_s: 5\nfallback: none\nhosts:\n"
            f"  - {{name: h0, url: '{host.url}', kind: openai, endpoint: completion, model: gemma3-270m}}\n",
            encoding="utf-8",
        )
        result = CliRunner().invoke(app, ["run", str(suite), "--run-id", "x1", "--fleet", str(fleet), "--quiet"])
        # One of two local calls fails, so the run itself fails (its verdict quotes the server's error): a report is
        # still written, and the failure banner is one more place untrusted text reaches.
        assert result.exit_code == 3, result.output
    return tmp_path / "reports" / "hostile" / "x1"


def test_markup_from_hosts_and_suites_stays_text(hostile_run: Path) -> None:
    rows = [json.loads(line) for line in (hostile_run / "cases.jsonl").read_text().splitlines()]
    answers = {r["case_id"]: r["generations"]["local"] for r in rows}
    # The run really carried the payload: an answer with markup and a failure whose server error holds markup.
    assert answers["marlow-ice"]["status"] == "ok" and SCRIPT in answers["marlow-ice"]["text"]
    assert answers["valleys"]["status"] == "failed" and SCRIPT in answers["valleys"]["error"]

    html = (hostile_run / "report.html").read_text()
    found = audit(html)
    assert set(found.tags) <= REPORT_TAGS, set(found.tags) - REPORT_TAGS
    assert found.bad_attributes == []
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;document.documentElement" in html  # shown, as text
    assert "juris|&lt;b&gt;diction&lt;/b&gt;" in html
    banner = html.split("class='failed'>")[1].split("</p>")[0]
    assert "Run failed:" in banner and "&lt;script&gt;" in banner

    markdown = (hostile_run / "report.md").read_text()
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    # Even a renderer that lets raw HTML through finds none: the Markdown escapes it all itself.
    again = audit(rendered)
    assert set(again.tags) <= REPORT_TAGS and again.bad_attributes == []
    assert "<script" not in rendered.lower()


@pytest.mark.parametrize(
    "text",
    [PAYLOAD, "ANTHROPIC_API_KEY _em_ a__b", "a|b", "1. first", "- item", "> quote", "``code``",
     "[x](javascript:alert(1))", "&amp; \\ *x*", ""],
)
def test_escaped_markdown_renders_back_to_the_same_text(text: str) -> None:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    flat = " ".join(text.split("\n"))
    cell = md.render(f"| h |\n|---|\n| {md_text(text)} |\n").split("<td>")[1].split("</td>")[0] if text else ""
    paragraph = md.render(md_text(text))
    code = md.render(md_code(text))
    from html import unescape

    if text:
        assert unescape(cell) == flat
        assert unescape(paragraph.removeprefix("<p>").removesuffix("</p>\n")) == flat
        assert unescape(code.removeprefix("<p><code>").removesuffix("</code></p>\n")).strip() == flat.strip()
