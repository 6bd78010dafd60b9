"""The HTML report in a real browser: headless Chromium, driven over the DevTools protocol on loopback.

A run with two retrieval variants, a local tier (a loopback llama.cpp-dialect fake that answers with markup and fails
one case with a long markup error) and a cloud tier (the Anthropic fake). Chromium opens ``report.html`` and the test
checks: no console error and no exception; the page reads top down (title, verdict, contents, sections); every section
and every chart renders (images decoded, non-zero size); every contents link resolves; the long error folds into a
``<details>``; no injected script ran. A full-page screenshot is saved as ``report.png`` in the run directory.

Needs Debian's ``chromium`` (see :mod:`_browser`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser import DevTools, chromium, chromium_binary
from typer.testing import CliRunner

from harness.cli.main import app
from harness.fakes import FakeAnthropic, FakeOpenAI, Reply
from harness.fakes.script import RecordedRequest

FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
INJECTED = (
    "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"
)


CASES = [
    ("marlow-ice", "How far inside the exterior wall must the ice barrier reach in Marlow County?",
     "code-r905-1-2-marlow", "code"),
    ("marlow-valleys", "Does Marlow County require ice barrier in valleys?", "code-r905-1-2-marlow", "code"),
    ("port-ellis", "What does Port Ellis require instead of an ice barrier?", "code-r905-1-2-port-ellis", "code"),
    ("model-code", "What does the model code say about ice barrier at eaves?", "code-r905-1-2-model", "code"),
    ("drying", "How should drying equipment be placed under S500?", "code-s500-drying-industry", "code"),
    ("contractor", "What did the contractor estimate for claim CLM-24-0117 include?",
     "est-clm-24-0117-contractor", "estimate"),
    ("carrier", "What did the carrier estimate for CLM-24-0117 allow for the roof?", "est-clm-24-0117-carrier",
     "estimate"),
]  # fmt: skip


def suite_text() -> str:
    cases = "".join(
        f"  - id: {case_id}\n    question: {json.dumps(question)}\n    reference: {json.dumps('See ' + doc)}\n"
        f"    relevant: {{{doc}: 3}}\n    category: {category}\n    generate: true\n"
        for case_id, question, doc, category in CASES
    )
    return (
        f"name: browser\ncorpus: {FIXTURE}\nchunking: {{max_chars: 600, overlap: 80}}\nk: 5\n"
        "metrics: [recall@5, ndcg@5, mrr]\n"
        "variants:\n  - {name: bm25, retriever: bm25}\n"
        "  - {name: bm25-fine, retriever: bm25, chunking: {max_chars: 300, overlap: 40}}\n"
        "generation:\n  context_chunks: 2\n  max_tokens: 32\n  tiers: [local, cloud]\n"
        f"cases:\n{cases}"
    )


def local_host(request: RecordedRequest) -> Reply:
    if "drying equipment" in json.dumps(request.body):
        return Reply.error(500, "llama runner crashed: " + INJECTED + " stack: " + "frame " * 80)
    return Reply.ok("36 inches inside the wall line. " + INJECTED, latency=0.01)


@pytest.fixture
def report_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    chromium_binary()  # decide skip/fail before spending time on the run
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CHROMA_URL", raising=False)
    (tmp_path / "browser.yaml").write_text(suite_text(), encoding="utf-8")
    with FakeOpenAI(script=local_host) as local, FakeAnthropic() as cloud:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", cloud.url)
        (tmp_path / "fleet.yaml").write_text(
            f"strategy: single\ntimeout_s: 5\nfallback: none\nhosts:\n"
            f"  - {{name: h0, url: '{local.url}', kind: openai, endpoint: completion, model: gemma3-270m}}\n",
            encoding="utf-8",
        )
        # --fresh: every answer is a call, so the verdict's count of failed calls is over all 14
        args = ["run", "browser.yaml", "--run-id", "b1", "--fleet", "fleet.yaml", "--budget", "1", "--quiet", "--fresh"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output  # 2 of 14 local calls fail: under the run's failure limit
    return tmp_path / "reports" / "browser" / "b1"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """Headless Chromium on a loopback debugging port; yields the page's websocket URL."""
    with chromium(tmp_path / "chromium-profile") as url:
        yield url


PAGE_FACTS = """(() => {
  const body = document.body;
  const sections = [...document.querySelectorAll('main section')].map(s => ({
    id: s.id, title: s.querySelector('h2,h3').textContent, height: s.getBoundingClientRect().height}));
  const images = [...document.images].map(i => ({
    ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0, width: i.getBoundingClientRect().width, alt: i.alt,
    inline: i.src.startsWith('data:image/png;base64,'),
    beside: !!i.closest('.pair') && !!i.closest('.pair').querySelector('table')}));
  const links = [...document.querySelectorAll('nav#contents a')].map(a => a.getAttribute('href'));
  return {
    order: [...body.children].map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')),
    title: document.title, h1: document.querySelector('header h1').textContent,
    verdict: document.querySelector('#verdict').innerText,
    sections, images, links,
    unresolved: links.filter(h => !document.getElementById(h.slice(1))),
    details: [...document.querySelectorAll('details')].map(d => d.querySelector('summary').textContent.length),
    pwned: document.documentElement.getAttribute('data-pwned'),
    scripts: document.scripts.length,
    external: [...document.querySelectorAll('[src],[href]')].filter(e => {
      const v = e.getAttribute('src') || e.getAttribute('href'); return !(v.startsWith('#') || v.startsWith('data:'));
    }).length,
  };
})()"""


def test_the_report_renders_in_chromium_top_down_with_every_chart(report_run: Path, browser: str) -> None:
    page = DevTools(browser)
    try:
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            page.send(domain)
        page.send("Page.navigate", url=(report_run / "report.html").as_uri())
        page.wait_for("Page.loadEventFired")
        facts = page.evaluate(PAGE_FACTS)
        metrics = page.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = page.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
    finally:
        page.close()
    (report_run / "report.png").write_bytes(base64.b64decode(shot["data"]))

    errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []

    # Top down: the title, the verdict, the contents, then the sections.
    assert facts["order"] == ["header", "section#verdict", "nav#contents", "main"]
    assert facts["title"] == facts["h1"] == "browser — run b1"
    assert "run complete" in facts["verdict"] and "local tier: 2 of 14 calls failed" in facts["verdict"]
    assert "largest drift, local − cloud" in facts["verdict"]

    titles = [s["title"] for s in facts["sections"]]
    assert titles[:2] == ["Tiering advice", "Overview"]
    for expected in ("Retrieval", "ndcg@5 with 95% bootstrap interval", "ndcg@5 by category",
                     "Paired comparison on ndcg@5", "Generation", "Local vs cloud", "Failed calls",
                     "Drift: local − cloud on the graded score", "Cost and latency per tier"):
        assert expected in titles
    assert all(s["height"] > 0 for s in facts["sections"])
    assert sorted(facts["links"]) == sorted(f"#{s['id']}" for s in facts["sections"]) and facts["unresolved"] == []

    # Every chart decoded, drawn at a real size, embedded, and beside its table: interval bars for the headline,
    # the paired comparison and the tier gap, the categories, the latency boxes and histograms, and the graded-drift
    # forest plot (the cloud tier's fake grades a sample).
    alts = sorted(i["alt"] for i in facts["images"])
    assert alts == sorted([
        "ndcg@5 by variant with 95% interval", "ndcg@5 by category", "paired difference in ndcg@5",
        "generation latency by tier and variant", "local minus cloud on token_f1", "latency distribution by tier",
        "local − cloud gap per category with its interval",
    ])
    assert all(i["ok"] and i["width"] > 100 and i["inline"] and i["beside"] for i in facts["images"])
    assert facts["details"] and all(length <= 125 for length in facts["details"])
    assert facts["pwned"] is None and facts["scripts"] == 0 and facts["external"] == 0

    png = (report_run / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
