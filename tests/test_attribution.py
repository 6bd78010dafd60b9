"""Retrieval or generation: the cheap attribution on every answer, checked against a scripted truth.

Real runner, real dispatcher, real prompts, fake Ollama hosts on loopback that speak the real protocol: one host
answers from the first passage of its prompt (it uses its context), the other answers the same thing whatever the
prompt holds (it ignores its context). Retrievers decide, case by case or variant by variant, whether the relevant
document is retrieved. The blame shares must follow that truth, with intervals that do not overlap where it differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.attribution import (
    AnswerBlame,
    attribution,
    blame_rows,
    fix_pointer,
    judge,
    label,
    worst_examples,
)
from harness.config.fleet import Fleet, Host
from harness.config.suite import Case, GenerationConfig, Suite, Variant
from harness.dispatch import Dispatcher
from harness.fakes import FakeOllama
from harness.fakes.rag_answers import first_passage, from_first_passage, from_nothing
from harness.fakes.script import Script
from harness.report import markdown
from harness.retrieval.base import ScoredChunk
from harness.run.prompts import prompt_builder, prompt_context
from harness.run.runner import RunParts, run_suite
from harness.run.tiers import LocalTier
from harness.store.context_frame import context_frame, doc_of_chunk
from harness.store.loaded import RunView
from harness.store.records import SCHEMA_VERSION, CaseRecord, Manifest, SuiteInfo, TierInfo
from harness.store.store import RunStore

RELEVANT = "Ice barrier shall extend from the eave to at least 36 inches inside the exterior wall line."
PARTIAL = "Ice barrier is required where the January mean temperature is 25F or less."
FILLER = "Drip edge shall be installed at eaves and rake edges, overlapping the underlayment."
PER_CATEGORY = 12


class ScriptedRetriever:
    """Returns the relevant document first when ``finds(question)``; otherwise only unrelated documents."""

    name = "scripted"

    def __init__(self, finds: object) -> None:
        self.finds = finds

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        case_no = query.rsplit(" ", 1)[-1].rstrip("?")
        if self.finds(query):  # type: ignore[operator]
            found = [(f"code-ice-{case_no}#0", f"code-ice-{case_no}", RELEVANT),
                     (f"code-cold-{case_no}#0", f"code-cold-{case_no}", PARTIAL)]
        elif "partial" in query:
            found = [(f"code-cold-{case_no}#0", f"code-cold-{case_no}", PARTIAL),
                     ("code-drip#0", "code-drip", FILLER)]
        else:
            found = [("code-drip#0", "code-drip", FILLER), ("code-drip#1", "code-drip", FILLER + " Nails 12 in.")]
        return [ScoredChunk(chunk, doc, 1.0 - i / 10, i + 1, text) for i, (chunk, doc, text) in enumerate(found)]


def cases(categories: Sequence[str]) -> list[Case]:
    out = []
    for category in categories:
        for i in range(PER_CATEGORY):
            number = f"{category}-{i}"
            out.append(Case(
                id=number, question=f"How far inside the wall must the ice barrier reach, {category} case {number}?",
                reference="At least 36 inches inside the exterior wall line.", category=category, generate=True,
                relevant={f"code-ice-{number}": 3, f"code-cold-{number}": 1}, must_include=["36 inches"],
            ))
    return out


async def run(tmp_path: Path, script: Script, suite: Suite, retrievers: dict[str, ScriptedRetriever]) -> RunView:
    async with FakeOllama(script=script) as host:
        fleet = Fleet(hosts=[Host(name="h0", url=host.url, kind="ollama", model="llama3.2")], strategy="single",
                      fallback="none", timeout_s=10)
        tier = LocalTier(Dispatcher.from_fleet(fleet))
        store = RunStore.create(tmp_path / "run")
        parts = RunParts(suite=suite, retrievers=retrievers, tiers=[tier], build_prompt=prompt_builder(suite, fleet),
                         prompt_context=prompt_context(suite, fleet))  # fmt: skip
        try:
            await run_suite(parts, store)
        finally:
            await tier.aclose()
    info = SuiteInfo(name=suite.name, path="s.yaml", sha256="0" * 64, cases=len(suite.cases),
                     variants=[v.name for v in suite.variants], metrics=["hit@5"], k=5,
                     answer_metrics=["token_f1", "must_include_recall", "abstained"],
                     config={"generation": {"context_chunks": 2}})  # fmt: skip
    manifest = Manifest(run_id="r", status="complete", suite=info, tiers={"local": TierInfo(status="run")})
    return RunView(store.path, manifest, list(store.records()))


def suite_of(categories: Sequence[str], variants: Sequence[str]) -> Suite:
    return Suite(name="truth", cases=cases(categories), variants=[Variant(name=v) for v in variants],
                 generation=GenerationConfig(context_chunks=2, max_tokens=48, tiers=["local"]), metrics=["hit@5"])


def shares(view: RunView) -> dict[tuple[str, str], dict[str, tuple[float, float, float]]]:
    from harness.report.attribution_section import run_attribution

    out = {}
    for row in run_attribution(view).rows:
        out[(row.variant, row.category)] = {
            kind: (i.estimate, i.low, i.high) for kind, i in row.kinds.items() if i.estimate is not None
        } | {"short": (row.short.estimate, row.short.low, row.short.high)}
    return out


def apart(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    return a[2] < b[1] or b[2] < a[1]


async def test_a_model_that_ignores_its_context_is_blamed_where_retrieval_found_the_document(tmp_path: Path) -> None:
    # category "found": the relevant document is passage 1; "lost": it is not retrieved at all
    suite = suite_of(["found", "lost"], ["dense"])
    view = await run(tmp_path, from_nothing(), suite, {"dense": ScriptedRetriever(lambda q: " found " in q)})
    got = shares(view)
    found, lost = got[("(all)", "found")], got[("(all)", "lost")]
    assert found["short"][0] == lost["short"][0] == 1.0  # the host never says 36 inches
    assert found["generation_miss"][0] == 1.0 and lost["retrieval_miss"][0] == 1.0
    assert found["retrieval_miss"][0] == 0.0 and lost["generation_miss"][0] == 0.0
    assert apart(found["generation_miss"], lost["generation_miss"])
    assert apart(found["retrieval_miss"], lost["retrieval_miss"])
    text = markdown.render(view)
    section = text.split("## Why it fell short")[1]
    found = "| local | (all) | found | 12 | 100% [76, 100] (12/12) | 0% [0, 24] (0/12) | 100% [76, 100] (12/12)"
    assert found in section
    advice_lines = [line for line in section.splitlines() if line.startswith("| local | (all) | lost |")]
    assert advice_lines and "100% [76, 100] (12/12) | 0% [0, 24] (0/12)" in advice_lines[0]
    worst = text.split("### Worst examples")[1]
    assert "`found-0`" in worst and "generation misses" in worst


async def test_a_model_that_reads_its_first_passage_fails_only_where_retrieval_missed(tmp_path: Path) -> None:
    suite = suite_of(["code"], ["finds", "misses"])
    retrievers = {"finds": ScriptedRetriever(lambda q: True), "misses": ScriptedRetriever(lambda q: False)}
    view = await run(tmp_path, from_first_passage(), suite, retrievers)
    # the context the prompt carried is recorded with each answer
    records = {(r.case_id, r.variant): r for r in view.records}
    assert records[("code-0", "finds")].generations["local"].context == ["code-ice-code-0#0", "code-cold-code-0#0"]
    assert records[("code-0", "misses")].generations["local"].context == ["code-drip#0", "code-drip#1"]
    got = shares(view)
    finds, misses = got[("finds", "(all)")], got[("misses", "(all)")]
    assert finds["short"] == pytest.approx((0.0, 0.0, 0.2425), abs=1e-3)  # Wilson upper bound of 0/12
    assert misses["short"][0] == 1.0 and misses["retrieval_miss"][0] == 1.0
    assert apart(finds["short"], misses["short"])
    text = markdown.render(view)  # brackets are escaped for Markdown
    assert "- local, code: retrieval misses 100% \\[76%, 100%\\] of 12 short answers: no tier fixes this; see " \
        "retrieval" in text


async def test_only_lower_grade_documents_in_the_context_is_partial_context(tmp_path: Path) -> None:
    suite = suite_of(["partial"], ["dense"])
    view = await run(tmp_path, from_first_passage(), suite, {"dense": ScriptedRetriever(lambda q: False)})
    assert shares(view)[("(all)", "partial")]["partial_context"][0] == 1.0


def test_the_fake_hosts_read_the_prompt_the_builder_writes() -> None:
    from harness.localfleet.prompt import build_request

    chunk = ScoredChunk("d#0", "d", 1.0, 1, "# Title\n\nFirst line\nsecond line.")
    for style in ("chat", "completion"):
        prompt = build_request("Q?", [chunk, ScoredChunk("e#0", "e", 0.5, 2, "Other.")], style=style).prompt
        # the completion style's worked examples come first; the real context is the last one
        assert first_passage(prompt.split("Context:")[-1].join(["Context:", ""]) if style == "completion" else prompt)
    assert doc_of_chunk("code-r905#3") == "code-r905" and doc_of_chunk("plain") == "plain"


# ------------------------------------------------------------------------------------------------ pure parts


def row(**fields: object) -> dict[str, object]:
    return {"answerable": True, "grade_status": "unmeasured", **fields}


def test_judge_reads_the_grade_first_then_the_cheap_metrics() -> None:
    assert judge(row(grade_status="graded", grade_correctness=2, grade_score=0.6, must_include_recall=0.0)) == (
        True, "grade", 0.6)
    assert judge(row(grade_status="graded", grade_correctness=1, grade_score=0.3)) == (False, "grade", 0.3)
    assert judge(row(must_include_recall=0.5, token_f1=0.9)) == (False, "cheap metrics", 0.5)
    assert judge(row(token_f1=0.5)) == (True, "cheap metrics", 0.5)
    assert judge(row(must_include_recall=1.0, abstained=1.0))[0] is False  # type: ignore[index]
    assert judge(row(answerable=False, abstained=0.0)) == (False, "cheap metrics", 0.0)
    assert judge(row(answerable=False, abstained=1.0)) == (True, "cheap metrics", 1.0)
    assert judge(row()) is None  # nothing to judge it by: unjudged, never right or wrong
    assert judge(row(token_f1=float("nan"))) is None


def test_labels() -> None:
    assert label(True, 0) == "retrieval_miss"
    assert label(True, 3) == "generation_miss"
    assert label(True, 2) == label(True, 1) == "partial_context"
    assert label(False, 0) == label(False, 3) == "should_have_declined"


def blame(case: str, kind: str | None, severity: float | None, tier: str = "local", category: str = "c") -> (
    AnswerBlame
):
    return AnswerBlame(case, "dense", tier, category, kind, "grade", "recorded", severity)  # type: ignore[arg-type]


def test_shares_are_among_the_short_answers_with_wilson_intervals_and_a_pointer() -> None:
    answers = [blame(f"g{i}", "generation_miss", 0.1) for i in range(7)]
    answers += [blame(f"r{i}", "retrieval_miss", 0.2) for i in range(3)]
    answers += [blame(f"ok{i}", None, 1.0) for i in range(10)]
    rows = {(r.variant, r.category): r for r in blame_rows(answers)}
    row_ = rows[("(all)", "c")]
    assert row_.judged == 20 and row_.short.estimate == 0.5 and row_.short.n == 20
    generation = row_.kinds["generation_miss"]
    assert generation.estimate == pytest.approx(0.7) and generation.n == 10
    # Wilson 95% for 7/10, worked by hand: centre 0.6396, half-width 0.2484
    assert generation.low == pytest.approx(0.3968, abs=1e-3) and generation.high == pytest.approx(0.8922, abs=1e-3)
    assert fix_pointer(row_) == (
        "generation misses 70% [40%, 89%] of 10 short answers: a better local model would help"
    )
    assert [a.case_id for a in worst_examples(answers, 3)] == ["g0", "g1", "g2"]
    assert fix_pointer(blame_rows([blame("x", None, 1.0)])[0]) is None


def test_old_runs_without_a_recorded_context_use_the_offered_chunks() -> None:
    from harness.store.records import GenerationRecord, RetrievalRecord

    record = CaseRecord(case_id="a", variant="dense", category="c", question="q?", relevant={"d1": 3, "d2": 1},
                        generate=True,
                        retrieval=RetrievalRecord(ranked=[("d2", 0.9), ("d1", 0.8)], chunks=["d2#0", "d1#4", "d1#5"],
                                                  metrics={}),
                        generations={"local": GenerationRecord(status="ok", tier="local", text="x")})  # fmt: skip
    frame = context_frame([record], offered_chunks=1)
    assert frame.loc[0, "context_source"] == "offered" and frame.loc[0, "best_context_grade"] == 1
    assert context_frame([record], offered_chunks=2).loc[0, "best_context_grade"] == 3
    record.generations["local"].context = ["d1#4"]
    recorded = context_frame([record], offered_chunks=1)
    assert recorded.loc[0, "context_source"] == "recorded" and recorded.loc[0, "context_docs"] == ("d1",)
    result = attribution(pd.DataFrame([{
        "case_id": "a", "variant": "dense", "tier": "local", "category": "c", "answerable": True, "status": "ok",
        "grade_status": "unmeasured", "must_include_recall": 0.0,
    }]), recorded)
    assert [a.kind for a in result.answers] == ["generation_miss"]


def test_a_version_2_record_reads_with_its_context_unknown() -> None:
    from harness.store.store import case_record_from_json

    v2 = {"schema_version": 2, "case_id": "a", "variant": "dense", "category": "c", "question": "q?",
          "retrieval": {"ranked": [["d", 1.0]], "chunks": ["d#0"], "metrics": {}},
          "generations": {"local": {"status": "ok", "tier": "local", "text": "x"}}}
    record = case_record_from_json(v2, "cases.jsonl:1")
    assert record.schema_version == SCHEMA_VERSION and record.generations["local"].context is None
