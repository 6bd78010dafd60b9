"""The viewer's server without a browser: security headers, run ids in URLs, read-only, CSRF and origin checks on
label writes, and the cases query (filter, sort, 100-row pages) against pandas on the same rows."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from harness.store.labels import read_labels
from harness.store.records import (
    CaseRecord,
    GenerationRecord,
    GradeRecord,
    Manifest,
    RetrievalRecord,
    SuiteInfo,
    TierInfo,
)
from harness.store.store import RunStore
from harness.view.app import create_app
from harness.view.catalog import Catalog, RunRef
from harness.view.rows import CaseQuery, case_rows, select

CATEGORIES = ("estimate", "code-section", "jurisdiction")


def make_run(reports: Path, cases: int = 60, seed: int = 1) -> Path:
    rng = random.Random(seed)
    store = RunStore.create(reports / "s" / "r1")
    store.write_manifest(Manifest(
        run_id="r1", status="complete",
        suite=SuiteInfo(name="s", path="s.yaml", sha256="0" * 64, cases=cases, variants=["dense", "bm25"],
                        metrics=["ndcg@5"], k=5,
                        config={"generation": {"context_chunks": 1, "tiers": ["local", "cloud"]}}),
        tiers={"local": TierInfo(status="run"), "cloud": TierInfo(status="run")},
    ))  # fmt: skip
    for i in range(cases):
        for variant in ("dense", "bm25"):
            generations = {}
            for tier in ("local", "cloud"):
                graded = i % 3 != 0
                scores = {c: rng.randrange(4) for c in ("correctness", "faithfulness", "completeness")}
                grade = (GradeRecord(status="graded", scores=scores, score=sum(scores.values()) / 9,
                                     confident_but_wrong=i % 7 == 0) if graded else GradeRecord.unmeasured("no"))
                generations[tier] = GenerationRecord(status="ok", tier=tier, text=f"answer {i} {tier} word{i % 5}",
                                                     latency_s=rng.random(), grade=grade)
            store.append(CaseRecord(
                case_id=f"c{i:03d}", variant=variant, category=CATEGORIES[i % 3], question=f"question {i}?",
                relevant={"d1": 3}, generate=True,
                retrieval=RetrievalRecord(ranked=[("d1", 1.0)], chunks=["d1#0"], metrics={"ndcg@5": rng.random()}),
                generations=generations,
            ))  # fmt: skip
    store.release()
    return reports


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    return make_run(tmp_path / "reports")


def test_every_page_carries_a_csp_that_forbids_inline_script(reports: Path) -> None:
    client = TestClient(create_app(reports))
    for url in ("/", "/runs/s/r1", "/runs/s/r1/cases", "/runs/s/r1/case?case=c001&variant=dense", "/nope"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text and re.findall(r"<script[^>]*>", response.text) in (
            [], ['<script src="/static/view.js" defer>'])


@pytest.mark.parametrize("url, status", [
    ("/runs/s/..%2F..%2Fetc", 404),  # a slash inside a path segment is no route
    ("/runs/s/.hidden/cases", 400),  # not a run id
    ("/runs/s/r2", 404),
    ("/runs/s/r1/case?case=nope&variant=dense", 404),
    ("/diff?a=s/r1&b=../x", 400),
    ("/diff?a=s/r1&b=s", 400),
    ("/runs/s/r1/cases?sort=__class__", 400),
    ("/runs/s/r1/cases?score_min=nan", 400),
    ("/runs/s/r1/cases?page=0", 400),
])  # fmt: skip
def test_bad_run_ids_and_queries_are_refused_with_a_message(reports: Path, url: str, status: int) -> None:
    response = TestClient(create_app(reports)).get(url)
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_a_symlink_out_of_the_reports_folder_is_not_a_run(reports: Path, tmp_path: Path) -> None:
    outside = make_run(tmp_path / "elsewhere")
    (reports / "s" / "linked").symlink_to(outside / "s" / "r1")
    client = TestClient(create_app(reports))
    assert client.get("/runs/s/linked").status_code == 400
    assert "linked" not in client.get("/").text


def test_read_only_refuses_labelling_and_offers_no_link(reports: Path) -> None:
    client = TestClient(create_app(reports, read_only=True))
    assert "open-label" not in client.get("/runs/s/r1").text
    assert client.get("/runs/s/r1/label?labeller=alice").status_code == 403
    assert client.post("/runs/s/r1/label", data={"labeller": "alice"}).status_code == 403
    assert read_labels(reports / "s" / "r1") == []


def _label_form(client: TestClient) -> dict[str, str]:
    page = client.get("/runs/s/r1/label?labeller=alice").text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return {**fields, "score_correctness": "3", "score_faithfulness": "2", "score_completeness": "1", "note": "ok"}


def test_a_label_write_needs_the_session_token_and_our_origin(reports: Path) -> None:
    client = TestClient(create_app(reports))
    form = _label_form(client)
    assert client.post("/runs/s/r1/label", data={**form, "csrf": "forged"}).status_code == 400
    assert client.post("/runs/s/r1/label", data=form, headers={"origin": "http://evil.example"}).status_code == 403
    other = TestClient(create_app(reports))  # another browser: no session cookie
    assert other.post("/runs/s/r1/label", data=form).status_code == 400
    assert read_labels(reports / "s" / "r1") == []

    saved = client.post("/runs/s/r1/label", data=form, follow_redirects=False)
    assert saved.status_code == 303
    (label,) = read_labels(reports / "s" / "r1")
    assert label.labeller == "alice" and label.scores == {"correctness": 3, "faithfulness": 2, "completeness": 1}
    assert client.post("/runs/s/r1/label", data=form).status_code == 400  # the ticket is spent


@pytest.mark.parametrize("params", [
    {},
    {"tier": "local", "sort": "score", "desc": "1"},
    {"category": "jurisdiction", "grade": "graded", "score_min": "0.3", "score_max": "0.8", "sort": "latency_s"},
    {"cbw": "1", "sort": "case_id", "desc": "1", "page": "2"},
    {"q": "WORD3", "variant": "bm25", "sort": "headline", "page": "2"},
])  # fmt: skip
def test_the_cases_query_matches_pandas_on_the_same_rows(reports: Path, params: dict[str, str]) -> None:
    catalog = Catalog(reports)
    rows = case_rows(catalog.view(RunRef("s", "r1")))
    query = CaseQuery.parse(params, [c.key for c in rows.columns])
    page = select(rows, query, page_size=25)
    frame = rows.frame
    expected = frame[
        (frame["tier"] == frame["tier"])
        & ((frame["tier"] == params["tier"]) if "tier" in params else True)
        & ((frame["category"] == params["category"]) if "category" in params else True)
        & ((frame["variant"] == params["variant"]) if "variant" in params else True)
        & ((frame["grade_status"] == params["grade"]) if "grade" in params else True)
        & ((frame["score"] >= float(params["score_min"])) if "score_min" in params else True)
        & ((frame["score"] <= float(params["score_max"])) if "score_max" in params else True)
        & ((frame["cbw"] == True) if "cbw" in params else True)  # noqa: E712
        & (frame["_text"].str.contains(params["q"].lower()) if "q" in params else True)
    ]
    if "sort" in params:
        expected = expected.sort_values(params["sort"], ascending="desc" not in params, kind="stable",
                                        na_position="last")
    pages = max(1, -(-len(expected) // 25))
    start = (min(int(params.get("page", "1")), pages) - 1) * 25  # a page past the end shows the last one
    assert page.total == len(expected) and page.pages == pages
    assert [(r["case_id"], r["variant"], r["tier"]) for r in page.rows] == list(
        expected[["case_id", "variant", "tier"]].itertuples(index=False, name=None))[start:start + 25]
    assert page.rows


def test_the_server_pages_100_rows_at_a_time(reports: Path) -> None:
    client = TestClient(create_app(reports))
    first = client.get("/runs/s/r1/cases").text
    assert first.count("class=\"case-link\"") == 100 and '"match-count">240</span> of 240 rows' in first
    assert 'id="next-page"' in first
    last = client.get("/runs/s/r1/cases?page=3").text
    assert last.count("class=\"case-link\"") == 40 and 'id="next-page"' not in last


def test_the_command_refuses_bad_input_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from _runs import main_exit

    from harness.cli.view import is_loopback

    assert main_exit(monkeypatch, "view", str(tmp_path / "nowhere")) == 2
    assert main_exit(monkeypatch, "view", "--export", str(tmp_path / "bundle")) == 2
    assert main_exit(monkeypatch, "view", "--export", str(tmp_path / "bundle"), str(tmp_path)) == 2  # not a run
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_the_label_page_asks_what_the_terminal_labeller_asks_without_loading_the_whole_run(
    reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import html

    from harness.grading.label_sample import graded_answers, label_queue
    from harness.store.loaded import load_run
    from harness.view import catalog as catalog_module
    from harness.view.app import LABEL_SEED

    records = load_run(reports / "s" / "r1").records
    queue = label_queue(graded_answers(records), "alice", set(), None, LABEL_SEED)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the label page loaded the whole run")

    monkeypatch.setattr(catalog_module, "load_run", refuse)
    client = TestClient(create_app(reports))
    for asked in queue[:3]:  # label, then the next answer comes from the table again
        case_id, variant, tier = asked
        record = next(r for r in records if r.key == (case_id, variant))
        page = client.get("/runs/s/r1/label?labeller=alice").text
        assert html.escape(record.question, quote=False) in page
        assert html.escape(record.generations[tier].text or "", quote=False) in page
        form = _label_form(client)
        assert client.post("/runs/s/r1/label", data=form, follow_redirects=False).status_code == 303
    assert [(label.case_id, label.variant, label.tier) for label in read_labels(reports / "s" / "r1")] == queue[:3]
