"""`harness view` in a real browser: headless Chromium over the DevTools protocol, against the viewer served by uvicorn
on loopback, over real runs of a small suite (a local tier from a loopback llama.cpp-dialect fake, a cloud tier and
the grader from the Anthropic fake, every answer graded).

``base`` and ``cand`` are two runs of the same suite: the local host answers the valleys question differently in
``cand``, and one cloud grade of ``cand`` is replaced in its grade log, so the diff must list exactly those cases.
``hostile`` is ``base`` with markup in its case ids, questions, answers, errors and rationales.

Screenshots of every page are saved in the test's tmp dir (``shots/``).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from _browser import DevTools, chromium, chromium_binary
from _runs import fleet_file, invoke, records, write_records
from _suites import generation, write_suite

from harness.fakes import FakeAnthropic, FakeOpenAI, Reply
from harness.fakes.anthropic import grade_json
from harness.fakes.script import RecordedRequest
from harness.store.claims_log import ClaimRecord, ClaimsEntry, ClaimsRecord, append_claims
from harness.store.grade_log import GradeEntry, append_grades
from harness.store.labels import read_labels
from harness.store.records import GradeRecord
from harness.view.app import create_app

VARIANTS = [{"name": "bm25", "retriever": "bm25"},
            {"name": "bm25-fine", "retriever": "bm25", "chunking": {"max_chars": 300, "overlap": 40}}]
GOOD = "At least 36 inches inside the exterior wall line."
PWN = "document.documentElement.setAttribute('data-pwned','{}')"
HOSTILE = (f"<script>{PWN.format('script')}</script><img src=x onerror=\"{PWN.format('img')}\">"
           f"<svg onload=\"{PWN.format('svg')}\"></svg>")
EXPECTED_CHANGES = {("valleys", "bm25"), ("valleys", "bm25-fine"), ("marlow-ice", "bm25")}


VALLEYS = "require ice barrier in valleys"  # in the valleys question only (passages mention valleys too)


def local_answers(valleys: str) -> Any:
    def reply(request: RecordedRequest) -> Reply:
        return Reply.ok(valleys if VALLEYS in json.dumps(request.body) else GOOD)
    return reply


def cloud(request: RecordedRequest) -> Reply:
    """Cloud answers, and grades: the valleys answers graded low and flagged confident-but-wrong."""
    body = json.dumps(request.body)
    if not isinstance(request.body, dict) or "output_config" not in request.body:
        return Reply.ok("The barrier reaches 24 inches inside the wall.")
    if VALLEYS in body:
        return Reply.ok(grade_json(1, 2, 1, confident_but_wrong=True, rationale="Wrong about valleys."))
    return Reply.ok(grade_json(3, 3, 2, rationale="Right; misses a detail."))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chromium_binary()  # decide skip/fail before spending time on the runs
    work = tmp_path_factory.mktemp("view")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.delenv("HARNESS_CHROMA_URL", raising=False)
        suite = write_suite(work / "mini.yaml", variants=VARIANTS,
                            generation=generation(tiers=["local", "cloud"]), grading={"rate": 1.0})
        with FakeAnthropic(script=cloud) as anthropic:
            patch.setenv("ANTHROPIC_API_KEY", "test-key")
            patch.setenv("ANTHROPIC_BASE_URL", anthropic.url)
            for run_id, valleys in (("base", "Yes, in every valley."), ("cand", "No, valleys are exempt.")):
                with FakeOpenAI(script=local_answers(valleys)) as local:
                    fleet = fleet_file(work / f"{run_id}.yaml", local.url)
                    invoke("run", str(suite), "--run-id", run_id, "--fleet", str(fleet), "--budget", "1",
                           "--quiet", "--no-cache")
    runs = work / "reports" / "mini"
    # One grade of cand changes (the grade log's newest entry wins), through the store's own writer.
    append_grades(runs / "cand", [GradeEntry(case_id="marlow-ice", variant="bm25", tier="cloud", grade=GradeRecord(
        status="graded", scores={"correctness": 0, "faithfulness": 1, "completeness": 0}, score=1 / 9,
        confident_but_wrong=True, rationale="Contradicts the reference.", grader_model="claude-sonnet-4-6"))])
    # Claim verdicts for one answer of base, as `grading.diagnose: true` would log them.
    append_claims(runs / "base", [ClaimsEntry(case_id="nowhere", variant="bm25", tier="local", claims=ClaimsRecord(
        status="diagnosed", passages=["p1", "p2"],
        answer_claims=[ClaimRecord(text="The barrier reaches 36 inches.", passages=["contradicted", "neutral"],
                                   other="neutral")],
        reference_claims=[ClaimRecord(text="The corpus does not cover this.", passages=["neutral", "neutral"],
                                      other="contradicted")]))])
    make_hostile(runs)
    return work / "reports"


def make_hostile(runs: Path) -> None:
    target = runs / "hostile"
    shutil.copytree(runs / "base", target, ignore=shutil.ignore_patterns(".lock", "grades.jsonl", "report.*"))
    rows = records(target)
    for row in rows:
        row["case_id"] = f"{row['case_id']}{HOSTILE}"
        row["question"] += HOSTILE
        row["category"] += "<b onmouseover=alert(1)>x</b>"
        for generation_row in row["generations"].values():
            generation_row["text"] = f"Answer {HOSTILE} ]]> {{{{ 7*7 }}}}"
            generation_row["host"] = f"host{HOSTILE}"
            generation_row["grade"] = {"status": "graded", "score": 0.5, "confident_but_wrong": True,
                                       "scores": {"correctness": 1, "faithfulness": 2, "completeness": 1},
                                       "rationale": f"rationale {HOSTILE}", "grader_model": f"judge{HOSTILE}"}
    first = next(iter(next(row for row in rows if row["generations"])["generations"].values()))
    first.update(status="failed", text=None, error=f"llama runner crashed: {HOSTILE}")
    write_records(target, rows)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(run_id="hostile", error=f"server said {HOSTILE}")
    (target / "manifest.json").write_text(json.dumps(manifest))
    invoke("report", str(target))


@contextmanager
def serve(reports: Path, *, read_only: bool = False) -> Iterator[str]:
    """The viewer on a free loopback port, in a thread; yields its base URL."""
    from harness.cli.view import report_outline, run_passages

    config = uvicorn.Config(create_app(reports, read_only=read_only, outline=report_outline, passages=run_passages),
                            host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the viewer did not start"
            threading.Event().wait(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def site(reports: Path) -> Iterator[str]:
    with serve(reports) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Browser]:
    with chromium(tmp_path / "chromium-profile") as url:
        browser = Browser(url, tmp_path / "shots")
        try:
            yield browser
        finally:
            browser.close()


class Browser(DevTools):
    """One page: navigate, click and wait for the next page, read facts, take screenshots."""

    def __init__(self, url: str, shots: Path) -> None:
        super().__init__(url)
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(domain)
        self.seen_errors: list[dict[str, Any]] = []

    def _loaded(self) -> None:
        self.wait_for("Page.loadEventFired")
        self.seen_errors += self.errors()
        self.events.clear()

    def goto(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        self._loaded()

    def click(self, selector: str, nth: int = 0) -> None:
        """Click the ``nth`` element matching ``selector``, one that loads another page, and wait for that page."""
        self.events.clear()
        assert self.evaluate(f"(() => {{ const e = document.querySelectorAll({json.dumps(selector)})[{nth}]; "
                             "if (!e) return false; e.click(); return true; })()"), f"nothing matches {selector}"
        self._loaded()

    def key(self, key: str) -> None:
        code = {"Enter": ("Enter", 13)}.get(key) or (f"Digit{key}" if key.isdigit() else f"Key{key.upper()}",
                                                     ord(key.upper()))
        text = "\r" if key == "Enter" else key
        self.send("Input.dispatchKeyEvent", type="keyDown", key=key, code=code[0], text=text,
                  windowsVirtualKeyCode=code[1])
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=code[0], windowsVirtualKeyCode=code[1])

    def rows(self) -> list[dict[str, str]]:
        """The visible rows of the cases table, as column key -> cell text."""
        return self.evaluate("""(() => {
          const keys = [...document.querySelectorAll('#cases thead th')].map(th => th.dataset.key);
          return [...document.querySelectorAll('#cases tbody tr')].filter(r => !r.classList.contains('hidden'))
            .map(r => Object.fromEntries([...r.cells].map((c, i) => [keys[i], c.textContent.trim()])));
        })()""")

    def text(self, selector: str = "body") -> str:
        return self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")

    def shot(self, name: str) -> None:
        self.screenshot(self.shots / f"{name}.png")

    def no_injection(self) -> dict[str, Any]:
        """What an injected script or handler would leave: the marker, foreign scripts, handler attributes."""
        return self.evaluate("""(() => ({
          pwned: document.documentElement.getAttribute('data-pwned'),
          scripts: [...document.scripts].map(s => s.getAttribute('src')),
          handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a =>
            a.name.startsWith('on'))).length,
          injected: document.querySelectorAll("img:not([src^='data:']), svg, b").length,
        }))()""")


def run_url(site: str, run_id: str) -> str:
    return f"{site}/runs/mini/{run_id}"


def test_runs_then_a_run_then_cases_then_a_case(site: str, page: Browser) -> None:
    page.goto(site + "/")
    page.shot("runs")
    runs = page.evaluate("[...document.querySelectorAll('tr[data-run]')].map(r => r.dataset.run)")
    assert runs == ["mini/base", "mini/cand", "mini/hostile"]
    assert "complete" in page.text("tr[data-run='mini/base'] .status")
    assert "passed" in page.text("tr[data-run='mini/base']") and "ndcg@5[bm25]" in page.text("tr[data-run='mini/base']")

    page.click("tr[data-run='mini/base'] a.run-link")
    page.shot("run")
    assert page.text("#run-title") == "mini — run base"
    assert "run complete" in page.text("#verdict")
    assert "Tiering advice" in page.text("#advice") and page.evaluate("!!document.querySelector('#advice table')")
    sections = page.evaluate("[...document.querySelectorAll('#sections a')].map(a => a.getAttribute('href'))")
    assert "/runs/mini/base/report.html#overview" in sections and len(sections) >= 5

    page.click("#open-cases")
    page.shot("cases")
    rows = page.rows()
    assert len(rows) == 3 * 2 * 2 + 2  # three generated cases × 2 variants × 2 tiers; port-ellis retrieval only
    assert page.text("#match-count") == str(len(rows))

    page.click("#cases tbody tr[data-tier='local'][data-variant='bm25'] td[data-sort='nowhere'] a.case-link")
    page.shot("case")
    assert page.evaluate("location.search").startswith("?case=")
    tiers = page.evaluate("[...document.querySelectorAll('article.tier')].map(a => a.dataset.tier)")
    assert tiers == ["local", "cloud"]
    assert "Grade: graded" in page.text("article.tier[data-tier='local']")
    assert page.evaluate("document.querySelectorAll('#passages tbody tr[class^=rel-]')"
                         ".length") == 2  # context_chunks: 2
    # Each passage's text, rebuilt from the run's suite and corpus (the store keeps only chunk ids).
    texts = page.evaluate("[...document.querySelectorAll('#passages .passage-text')].map(e => e.textContent)")
    assert len(texts) == 2 and all(len(text) > 20 for text in texts)
    assert page.evaluate("!document.getElementById('passages-note')")  # the corpus has not changed
    assert page.evaluate("document.querySelector('h1 #case-id').textContent") == "nowhere"
    claims = page.text("article.tier[data-tier='local'] .claims")
    assert "Claims: diagnosed" in claims and "The barrier reaches 36 inches." in claims
    assert page.evaluate("document.querySelectorAll(\"article.tier[data-tier='local'] .cv-contradicted\").length") == 2
    assert page.evaluate("document.querySelectorAll(\"article.tier[data-tier='cloud'] .claims\").length") == 0
    assert page.seen_errors == []


def test_filtering_and_sorting_on_the_server(site: str, page: Browser) -> None:
    page.goto(run_url(site, "base") + "/cases")
    page.evaluate("""(() => { const f = document.getElementById('case-filters');
        f.tier.value = 'local'; f.category.value = 'jurisdiction'; })()""")
    page.click("#apply-filter")
    rows = page.rows()
    assert rows and all(r["tier"] == "local" and r["category"] == "jurisdiction" for r in rows)
    assert {r["case_id"] for r in rows} == {"marlow-ice"}  # port-ellis is jurisdiction but retrieval only

    page.goto(run_url(site, "base") + "/cases?cbw=1")
    flagged = page.rows()
    assert {(r["case_id"], r["tier"]) for r in flagged} == {("valleys", "local"), ("valleys", "cloud")}
    page.goto(run_url(site, "base") + "/cases?score_min=0.5&score_max=1")
    assert page.rows() and all(0.5 <= float(r["score"]) <= 1 for r in page.rows())
    page.goto(run_url(site, "base") + "/cases?q=EXEMPT")
    assert page.rows() == []
    page.goto(run_url(site, "cand") + "/cases?q=EXEMPT")
    assert {r["case_id"] for r in page.rows()} == {"valleys"}

    page.goto(run_url(site, "base") + "/cases")
    page.click("th[data-key='score'] a")  # ascending
    page.shot("cases-sorted")
    scores = [r["score"] for r in page.rows()]
    measured = [float(s) for s in scores if s != "—"]
    assert measured == sorted(measured) and scores[len(measured):] == ["—"] * (len(scores) - len(measured))
    page.click("th[data-key='score'] a")  # descending
    measured = [float(r["score"]) for r in page.rows() if r["score"] != "—"]
    assert measured == sorted(measured, reverse=True)
    page.click("th[data-key='case_id'] a")
    ids = [r["case_id"] for r in page.rows()]
    assert ids == sorted(ids)
    assert page.seen_errors == []


def test_the_diff_lists_exactly_the_changed_cases(site: str, page: Browser) -> None:
    page.goto(f"{site}/diff?a=mini/base&b=mini/cand")
    page.shot("diff")
    listed = page.evaluate("[...document.querySelectorAll('tr.change')].map(r => [r.dataset.case, r.dataset.variant])")
    assert {tuple(pair) for pair in listed} == EXPECTED_CHANGES and len(listed) == len(EXPECTED_CHANGES)
    valleys = page.text("tr.change[data-case='valleys'][data-variant='bm25']")
    assert "local answer" in valleys and "token_f1" in valleys
    assert "cloud grade" in page.text("tr.change[data-case='marlow-ice']")
    assert "cloud graded score 0.889 → 0.111 (-0.778)" in page.text("tr.change[data-case='marlow-ice']")

    page.click("tr.change[data-case='valleys'][data-variant='bm25'] a.diff-case-link")
    page.shot("diff-case")
    local = "section.tier-diff[data-tier='local']"
    assert page.evaluate(f"[...document.querySelectorAll(\"{local} .diff-a del\")].map(e => e.textContent)") \
        == ["Yes, in every valley."]
    assert page.evaluate(f"[...document.querySelectorAll(\"{local} .diff-b ins\")].map(e => e.textContent)") \
        == ["No, valleys are exempt."]
    cloud_tier = "section.tier-diff[data-tier='cloud']"
    assert page.evaluate(f"document.querySelectorAll(\"{cloud_tier} del, {cloud_tier} ins\").length") == 0
    assert page.seen_errors == []


def test_labelling_three_answers_by_keyboard_writes_them_to_the_labels_file(
    reports: Path, site: str, page: Browser
) -> None:
    page.goto(run_url(site, "cand") + "/label")
    page.evaluate("document.getElementById('labeller-input').value = 'alice'")
    page.click("#who button")
    page.shot("label")
    blind = page.text("main")
    assert "local" not in blind and "cloud" not in blind and "gemma3" not in blind and "Grade" not in blind
    shown = []
    for scores in ((3, 2, 1), (0, 1, 2), (2, 2, 2)):
        shown.append(page.text("#label-answer"))
        page.events.clear()
        for value in scores:
            page.key(str(value))
        page.key("w")
        page.evaluate("document.getElementById('note').value = 'checked <b>by hand</b>'")
        page.key("Enter")
        page._loaded()
    assert "3 labelled" in page.text(".progress")
    labels = [label for label in read_labels(reports / "mini" / "cand") if label.labeller == "alice"]
    assert [tuple(label.scores.values()) for label in labels] == [(3, 2, 1), (0, 1, 2), (2, 2, 2)]
    assert all(label.confident_but_wrong and label.note == "checked <b>by hand</b>" for label in labels)
    assert len({label.key for label in labels}) == 3
    texts = {label.key: label for label in labels}
    view_records = {(r["case_id"], r["variant"]): r for r in records(reports / "mini" / "cand")}
    assert sorted(shown) == sorted(view_records[key[:2]]["generations"][key[2]]["text"] for key in texts)

    # The labels show on the case page, under their answer.
    case_id, variant, tier = labels[0].key
    page.goto(run_url(site, "cand") + f"/case?case={quote(case_id)}&variant={quote(variant)}")
    assert "alice: correctness 3, faithfulness 2, completeness 1" in page.text(f"article.tier[data-tier='{tier}']")
    assert page.seen_errors == []


def test_labels_made_in_the_browser_are_counted_by_harness_judge(reports: Path, site: str, page: Browser) -> None:
    run = reports / "mini" / "base"
    before = json.loads(invoke("judge", str(run), "--json"))
    assert before["labelled"] is False
    page.goto(run_url(site, "base") + "/label?labeller=bob")
    for scores in ((3, 3, 2), (1, 2, 1), (2, 3, 2)):
        page.events.clear()
        for value in scores:
            page.key(str(value))
        page.key("Enter")
        page._loaded()
    assert "3 labelled" in page.text(".progress")
    result = json.loads(invoke("judge", str(run), "--json"))
    agreement = result["agreement"]
    assert result["labelled"] is True and agreement["labels"] == 3 and agreement["labelled_answers"] == 3
    assert agreement["labellers"] == ["bob"] and sum(agreement["answers_by_tier"].values()) == 3
    overall = next(row for row in agreement["criteria"] if row["name"] == "overall")
    assert overall["n"] == 3
    assert page.seen_errors == []


@pytest.mark.parametrize("path", [
    "/", "/runs/mini/hostile", "/runs/mini/hostile/cases", "/runs/mini/hostile/cases?q=%3Cscript%3E",
    "/diff?a=mini/base&b=mini/hostile", "/runs/mini/hostile/report.html",
])  # fmt: skip
def test_a_hostile_run_renders_as_text_and_runs_nothing(site: str, page: Browser, path: str) -> None:
    page.goto(site + path)
    facts = page.no_injection()
    assert facts["pwned"] is None and facts["handlers"] == 0 and facts["injected"] == 0
    assert facts["scripts"] in ([], ["/static/view.js"])
    assert page.seen_errors == []
    if "cases" in path:
        assert "<script>" in page.text("#cases")


def test_every_page_of_a_hostile_case_shows_its_markup_as_text(site: str, page: Browser) -> None:
    page.goto(run_url(site, "hostile") + "/cases")
    for index in range(3):
        page.goto(run_url(site, "hostile") + "/cases")
        page.click("#cases tbody tr[data-tier='local'] a.case-link", nth=index)
        if index == 0:
            page.shot("hostile-case")
        facts = page.no_injection()
        assert facts["pwned"] is None and facts["handlers"] == 0 and facts["injected"] == 0
        assert "<script>" in page.text("#case-id") and "onerror=" in page.text("#answers")
    page.goto(run_url(site, "hostile") + "/label?labeller=mallory")
    assert "<script>" in page.text("#label-answer") and page.no_injection()["pwned"] is None
    page.goto(f"{site}/diff?a=mini/base&b=mini/hostile")
    assert page.evaluate("document.querySelectorAll('tr.change').length") == 0  # no case id is shared
    assert page.seen_errors == []


def test_the_exported_bundle_opens_from_disk(reports: Path, tmp_path: Path, page: Browser) -> None:
    bundle = tmp_path / "bundle"
    invoke("view", "--export", str(bundle), *(str(reports / "mini" / run) for run in ("base", "cand", "hostile")))
    assert (bundle / "runs" / "mini" / "base" / "cases.json").is_file()
    page.goto((bundle / "index.html").as_uri())
    page.shot("export-runs")
    assert page.evaluate("document.body.dataset.mode") == "static"
    page.click("tr[data-run='mini/base'] a.run-link")
    assert "run complete" in page.text("#verdict") and page.evaluate("!document.getElementById('open-label')")
    page.click("#open-cases")
    assert len(page.rows()) == 14
    page.evaluate("document.getElementById('case-filters').tier.value = 'cloud'")
    page.evaluate("document.getElementById('apply-filter').click()")  # filtered by the page's script, no server
    page.shot("export-cases")
    assert {r["tier"] for r in page.rows()} == {"cloud"} and page.text("#match-count") == "6"
    page.evaluate("document.querySelector(\"th[data-key='case_id'] a\").click()")
    ids = [r["case_id"] for r in page.rows()]
    assert ids == sorted(ids)
    page.click("#cases tbody tr:not(.hidden) a.case-link")
    assert page.evaluate("document.querySelectorAll('article.tier').length") == 2

    page.goto((bundle / "runs" / "mini" / "cand" / "index.html").as_uri())
    page.click("a.diff-link")  # cand against the run before it
    page.shot("export-diff")
    listed = page.evaluate("[...document.querySelectorAll('tr.change')].map(r => [r.dataset.case, r.dataset.variant])")
    assert {tuple(pair) for pair in listed} == EXPECTED_CHANGES
    page.click("tr.change[data-case='valleys'] a.diff-case-link")
    assert page.evaluate("document.querySelectorAll('ins, del').length") == 2

    page.goto((bundle / "runs" / "mini" / "hostile" / "cases.html").as_uri())
    facts = page.no_injection()
    assert facts["pwned"] is None and facts["handlers"] == 0 and facts["injected"] == 0
    assert page.seen_errors == []
