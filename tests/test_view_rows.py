"""The viewer's cases table, read quickly: the same rows as the validated records give, failure kinds as the report's
attribution judges them, headline figures as run history computes them; damaged lines named; the table kept on
disk beside the run and rebuilt when the run changes; a big run's first page shown before its table is built, without
holding other runs' pages; the runs page from manifests only; a case page with its claims and passage text."""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from harness.analysis.attribution import attribution
from harness.analysis.history import run_series
from harness.errors import RunStoreError
from harness.grading.passages import Passages, no_passages
from harness.store.claims_log import ClaimRecord, ClaimsEntry, ClaimsRecord, append_claims
from harness.store.context_frame import context_frame
from harness.store.grade_log import GradeEntry, append_grades
from harness.store.loaded import load_run
from harness.store.records import (
    CaseRecord,
    GenerationRecord,
    GradeRecord,
    Manifest,
    RetrievalRecord,
    SuiteInfo,
    TierInfo,
)
from harness.store.scan import Line
from harness.store.store import RunStore
from harness.view import catalog as catalog_module
from harness.view.app import create_app
from harness.view.row_index import INDEX, load_index
from harness.view.rows import RowPlan, case_rows_at, rows_frame

DOCS = [f"doc{i}" for i in range(8)]
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def diverse_run(reports: Path, cases: int = 80, seed: int = 3, run_id: str = "r1") -> Path:
    """Cases of every kind attribution tells apart: answerable or not, graded or not, context recorded or offered,
    must-include lists, declined answers, failed and skipped calls, retrieval-only cases."""
    rng = random.Random(seed)
    path = reports / "s" / run_id
    store = RunStore.create(path)
    store.write_manifest(Manifest(
        run_id=run_id, status="complete",
        suite=SuiteInfo(name="s", path="s.yaml", sha256="0" * 64, cases=cases, variants=["dense", "bm25"],
                        metrics=["recall@5", "ndcg@5"], answer_metrics=["token_f1", "abstained"], k=5,
                        config={"generation": {"context_chunks": 2, "tiers": ["local", "cloud"]}}),
        tiers={"local": TierInfo(status="run"), "cloud": TierInfo(status="run")},
    ))  # fmt: skip
    for i in range(cases):
        answerable = i % 5 != 0
        relevant = {rng.choice(DOCS): rng.choice([1, 2, 3]) for _ in range(2)} if answerable else {}
        must = ["36 inches"] if i % 4 == 1 else []
        for variant in ("dense", "bm25"):
            ranked = [(doc, round(rng.random(), 3)) for doc in rng.sample(DOCS, 5)]
            chunks = [f"{doc}#{rng.randrange(3)}" for doc, _ in ranked]
            generations: dict[str, GenerationRecord] = {}
            if i % 9 != 4:  # a few retrieval-only cases
                for tier in ("local", "cloud"):
                    roll = rng.random()
                    if roll < 0.05:
                        generations[tier] = GenerationRecord(status="failed", tier=tier, error=f"boom {HOSTILE}")
                        continue
                    if roll < 0.08:
                        generations[tier] = GenerationRecord(status="skipped", tier=tier, reason="budget",
                                                             grade=GradeRecord.unmeasured("budget"))
                        continue
                    metrics: dict[str, float | None] = {"token_f1": rng.choice([None, rng.random()]),
                                                        "abstained": float(rng.random() < 0.2)}
                    if must:
                        metrics["must_include_recall"] = rng.choice([0.0, 1.0])
                    scores = {c: rng.randrange(4) for c in ("correctness", "faithfulness", "completeness")}
                    grade = (GradeRecord(status="graded", scores=scores, score=sum(scores.values()) / 9,
                                         confident_but_wrong=rng.random() < 0.2, rationale="r")
                             if rng.random() < 0.5 else GradeRecord.unmeasured("not sampled"))
                    context = rng.sample(chunks, 2) if rng.random() < 0.5 else None
                    generations[tier] = GenerationRecord(
                        status="ok", tier=tier, text=f"answer {i} {tier} {rng.random():.3f}", latency_s=rng.random(),
                        cost_usd=rng.random() / 100 if tier == "cloud" else None, grade=grade,
                        answer_metrics=metrics, context=context)
            store.append(CaseRecord(
                case_id=f"c{i:03d}", variant=variant, category=("estimate", "jurisdiction", "mold")[i % 3],
                question=f"question {i}?", reference="ref", relevant=relevant, must_include=must, generate=True,
                retrieval=RetrievalRecord(ranked=ranked, chunks=chunks,
                                          metrics={"recall@5": rng.random(), "ndcg@5": rng.random()},
                                          unmeasured_reason=None if answerable else "no relevant documents"),
                generations=generations,
            ))  # fmt: skip
    # Some grades arrive later, through the grade log (the newest entry wins).
    append_grades(path, [
        GradeEntry(case_id=f"c{i:03d}", variant="dense", tier="local", grade=GradeRecord(
            status="graded", scores={"correctness": 0, "faithfulness": 0, "completeness": 0}, score=0.0,
            confident_but_wrong=True))
        for i in range(1, cases, 7)
    ])  # fmt: skip
    store.release()
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return diverse_run(tmp_path / "reports")


def test_the_quick_read_gives_the_rows_the_validated_records_give(run: Path) -> None:
    view = load_run(run)
    # A second judge's grades live in the same log; they must not stand in for Claude's in either read.
    append_grades(run, [GradeEntry(case_id=r.case_id, variant=r.variant, tier=tier, judge="qwen",
                                   grade=GradeRecord(status="graded", scores={"correctness": 0}, score=0.0))
                        for r in view.records for tier in r.generations])
    assert load_run(run).records == view.records
    plan = RowPlan.of(view.manifest)
    validated = rows_frame([Line(0, number, record.model_dump(mode="json"))
                            for number, record in enumerate(view.records, start=1)], {}, plan, run)
    quick = case_rows_at(run, view.manifest).frame
    assert len(quick) > 200 and set(quick["failure"]) >= {"retrieval_miss", "right", "unjudged", ""}
    skip = ["offset", "line"]
    pd.testing.assert_frame_equal(quick.drop(columns=skip), validated.drop(columns=skip))


def test_failure_kinds_are_the_reports_attribution(run: Path) -> None:
    view = load_run(run)
    frame = case_rows_at(run, view.manifest).frame
    result = attribution(view.generation, context_frame(view.records, 2))
    expected = {(a.case_id, a.variant, a.tier): a.kind or "right" for a in result.answers}
    ours = {(row.case_id, row.variant, row.tier): row.failure for row in frame.itertuples()}
    judged = {key: kind for key, kind in ours.items() if kind not in ("", "unjudged")}
    assert judged == expected
    assert sum(kind == "unjudged" for kind in ours.values()) == result.unjudged
    assert set(expected.values()) >= {"retrieval_miss", "generation_miss", "partial_context", "should_have_declined",
                                      "right"}


def test_headline_figures_are_run_historys_numbers(run: Path) -> None:
    view = load_run(run)
    figures = {f.name: f for f in case_rows_at(run, view.manifest).figures}
    values, errors = run_series(view)
    wanted = {name for name in values if name.startswith("ndcg@5[") or name.startswith("gap[")}
    assert set(figures) == wanted and len(wanted) == 4
    for name in wanted:
        assert figures[name].mean == pytest.approx(values[name])
        assert figures[name].se == pytest.approx(errors[name])


def _rewrite(run: Path, change: Any) -> None:
    lines = (run / "cases.jsonl").read_text().splitlines()
    change(lines)
    (run / "cases.jsonl").write_text("\n".join(lines) + "\n")


def test_a_damaged_record_is_named_by_line_and_field_and_a_torn_tail_is_left_out(run: Path) -> None:
    manifest = RunStore.open(run).manifest()
    whole = len(case_rows_at(run, manifest).frame)

    def torn(lines: list[str]) -> None:
        lines.append(lines[0][:50])

    _rewrite(run, torn)
    assert len(case_rows_at(run, manifest).frame) == whole  # the writer died mid-line: that line is not a record

    def bad_type(lines: list[str]) -> None:
        data = json.loads(lines[2])
        data["question"] = 5
        lines[2] = json.dumps(data)

    _rewrite(run, bad_type)
    with pytest.raises(RunStoreError, match=r"cases\.jsonl:3: question"):
        case_rows_at(run, manifest)


def test_an_older_record_is_lifted_as_the_store_lifts_it(run: Path) -> None:
    manifest = RunStore.open(run).manifest()
    before = case_rows_at(run, manifest).frame

    def version_2(lines: list[str]) -> None:
        for index, line in enumerate(lines):
            data = json.loads(line)
            data["schema_version"] = 2
            for generation in data["generations"].values():
                generation.pop("context")
            lines[index] = json.dumps(data)

    _rewrite(run, version_2)
    after = case_rows_at(run, manifest).frame
    assert (after[["case_id", "variant", "tier", "score"]].fillna(-1).values
            == before[["case_id", "variant", "tier", "score"]].fillna(-1).values).all()
    # Without a recorded context the offered chunks stand in, as in the report's attribution.
    view = load_run(run)
    kinds = {(a.case_id, a.variant, a.tier): a.kind or "right"
             for a in attribution(view.generation, context_frame(view.records, 2)).answers}
    ours = {(r.case_id, r.variant, r.tier): r.failure for r in after.itertuples()}
    assert {key: kind for key, kind in ours.items() if kind not in ("", "unjudged")} == kinds


def test_the_table_is_kept_beside_the_run_and_rebuilt_when_the_run_changes(run: Path) -> None:
    reports = run.parent.parent
    TestClient(create_app(reports, read_only=True)).get("/runs/s/r1/cases")
    assert not (run / INDEX).exists()  # read-only writes nothing

    client = TestClient(create_app(reports))
    assert client.get("/runs/s/r1/cases").status_code == 200
    found = load_index(run)
    assert found is not None
    manifest = RunStore.open(run).manifest()
    pd.testing.assert_frame_equal(found[0], case_rows_at(run, manifest).frame)

    # A new viewer reads the table from the index, not the lines.
    fresh = TestClient(create_app(reports, read_only=True))
    viewer = fresh.app.state.viewer  # type: ignore[attr-defined]
    assert "c000" in fresh.get("/runs/s/r1/cases?sort=case_id").text
    assert viewer.catalog.rows_ready(viewer.catalog.refs()[0]).source == "index"

    # A new grade makes it stale: the next viewer parses the lines again, with the new grade in.
    append_grades(run, [GradeEntry(case_id="c000", variant="bm25", tier="local", grade=GradeRecord(
        status="graded", scores={"correctness": 3, "faithfulness": 3, "completeness": 3}, score=1.0))])
    assert load_index(run) is None
    again = TestClient(create_app(reports))
    text = again.get("/runs/s/r1/cases?variant=bm25&tier=local&score_min=1&q=answer 0 ").text
    assert "c000" in text
    assert load_index(run) is not None


def test_a_big_runs_first_page_shows_before_its_table_and_other_runs_do_not_wait(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = run.parent.parent
    diverse_run(reports, cases=10, run_id="r2")
    release = threading.Event()
    real = catalog_module.load_rows

    def slow(path: Path, manifest: Manifest, *, write: bool) -> Any:
        if path.name == "r1":
            assert release.wait(60)
        return real(path, manifest, write=write)

    monkeypatch.setattr(catalog_module, "load_rows", slow)
    monkeypatch.setattr("harness.view.app.READY_WAIT_S", 0.0)
    client = TestClient(create_app(reports, first_page_wait=0.0, small_run_bytes=0))
    try:
        first = client.get("/runs/s/r1/cases").text
        assert 'id="indexing"' in first and 'data-ready="/runs/s/r1/cases/ready"' in first
        assert first.count('class="case-link"') == 100
        assert client.get("/runs/s/r1/cases/ready").json() == {"ready": False}
        # r1's table is still being built; r2's pages are served all the same (no lock held while building).
        other = client.get("/runs/s/r2/cases?tier=local")
        assert other.status_code == 200 and 'id="indexing"' not in other.text
        assert client.get("/").status_code == 200
    finally:
        release.set()
    monkeypatch.setattr("harness.view.app.READY_WAIT_S", 60.0)  # the page's question waits for the table
    assert client.get("/runs/s/r1/cases/ready").json() == {"ready": True}
    whole = client.get("/runs/s/r1/cases").text
    assert 'id="indexing"' not in whole and 'id="next-page"' in whole
    # The preview's rows are the whole table's first page.
    assert [line for line in first.splitlines() if "case-link" in line] == \
        [line for line in whole.splitlines() if "case-link" in line]


def test_the_runs_page_reads_manifests_only(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = run.parent.parent

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the runs page loaded a run")

    with monkeypatch.context() as patch:
        patch.setattr(catalog_module, "load_run", refuse)
        patch.setattr(catalog_module, "load_rows", refuse)
        page = TestClient(create_app(reports, small_run_bytes=0)).get("/")
        assert page.status_code == 200 and "computed when its cases are first opened" in page.text
    TestClient(create_app(reports)).get("/runs/s/r1/cases")  # files the index, with its figures
    with monkeypatch.context() as patch:
        patch.setattr(catalog_module, "load_run", refuse)
        patch.setattr(catalog_module, "load_rows", refuse)
        page = TestClient(create_app(reports, small_run_bytes=0)).get("/")
        assert "ndcg@5[dense]</code> 0." in page.text and "gap[bm25]" in page.text


def test_the_failure_filter(run: Path) -> None:
    client = TestClient(create_app(run.parent.parent))
    page = client.get("/runs/s/r1/cases?failure=retrieval_miss").text
    kinds = set(re.findall(r'data-failure="([^"]*)"', page))
    assert kinds == {"retrieval_miss"}
    assert "retrieval miss" in page
    assert client.get("/runs/s/r1/cases?failure=bogus").status_code == 400


def test_a_case_page_reads_one_record_and_shows_claims_and_passages(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = run.parent.parent
    claim = ClaimRecord(text=f"The barrier is 36 inches {HOSTILE}", passages=["entailed", "contradicted"],
                        other="neutral")
    append_claims(run, [ClaimsEntry(case_id="c001", variant="dense", tier="local", claims=ClaimsRecord(
        status="diagnosed", passages=["doc1#0", "doc2#0"], answer_claims=[claim],
        reference_claims=[ClaimRecord(text="Reference claim", passages=["neutral", "neutral"], other="entailed")]))])
    view = load_run(run)
    record = next(r for r in view.records if r.key == ("c001", "dense"))
    claude = record.generations["local"].grade
    second = GradeRecord(status="graded", scores={"correctness": 1}, score=0.25, grader_model="qwen2.5:7b",
                         rationale=f"Too vague {HOSTILE}")
    append_grades(run, [GradeEntry(case_id="c001", variant="dense", tier="local", grade=second, judge="qwen"),
                        GradeEntry(case_id="c002", variant="dense", tier="local", grade=second, judge="qwen")])
    given = record.retrieval.chunks[:2]
    texts = {given[0]: f"Passage one {HOSTILE}"}  # the second chunk is no longer in the corpus

    def loader(path: Path, manifest: Manifest) -> Passages:
        return Passages({"dense": texts}, 2, None, "the corpus has changed since this run; passages are today's text")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a case page loaded the whole run")

    monkeypatch.setattr(catalog_module, "load_run", refuse)
    client = TestClient(create_app(reports, passages=loader))
    page = client.get("/runs/s/r1/case?case=c001&variant=dense").text
    assert "The barrier is 36 inches &lt;script&gt;" in page and "<script>document" not in page
    assert "Claims: diagnosed" in page and 'class="cv cv-contradicted"' in page and "Reference claim" in page
    assert "Passage one &lt;script&gt;" in page
    assert f"(chunk {given[1]} is no longer in the corpus)" in page
    assert "the corpus has changed since this run" in page
    assert page.count('class="claims"') == 1  # only the tier with claims
    assert page.count("Second judge qwen: graded") == 1  # only the tier it graded
    assert "Too vague &lt;script&gt;" in page and "model qwen2.5:7b" in page
    if claude.score is not None:
        assert f"{0.25 - claude.score:+.3f} against the grade above" in page, page[page.index("Second judge"):][:600]

    unavailable = TestClient(create_app(reports, passages=lambda path, manifest: no_passages("no suite here")))
    page = unavailable.get("/runs/s/r1/case?case=c001&variant=dense").text
    assert "Passage text is not shown: no suite here." in page and "passage-text" not in page.split("</table>")[0]
