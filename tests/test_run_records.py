"""The typed run store: records round-trip, old (version 1) runs stay readable, newer ones are refused plainly, damage
names its file, line and field, and the exported JSON Schemas are current and accept what the store writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import get_args

import jsonschema
import pytest

from harness.config.suite import Case
from harness.errors import RunStoreError
from harness.providers.types import Attempt, Generation, Outcome, ServerTiming, Usage
from harness.report import markdown
from harness.store import records
from harness.store.grade_log import GRADES, read_grades
from harness.store.loaded import load_run
from harness.store.schemas import SCHEMA_DIR, schema_texts
from harness.store.store import RunStore

CASE = Case(id="ice", question="How far inside the wall?", reference="36 inches", relevant={"doc-a": 3},
            category="code", must_include=["36"], generate=True)


def a_record() -> records.CaseRecord:
    retrieval = records.retrieval_record([("doc-a", 0.9), ("doc-b", 0.5)], ["doc-a#0", "doc-b#1"],
                                         {"ndcg@5": 1.0, "recall@5": 1.0}, 0.01, True, chunks_fetched=10)
    record = records.case_record(CASE, "dense", retrieval)
    generation = Generation(text="36 inches", host="h0", model="m", tier="local", latency_s=0.2,
                            usage=Usage(input_tokens=50, output_tokens=3), cost_usd=1e-5,
                            attempts=(Attempt(host="h0", outcome="ok", latency_s=0.2),))
    record.generations = {
        "local": records.generation_record(generation, CASE, answerable=True),
        "cloud": records.skipped_generation_record("cloud", "ANTHROPIC_API_KEY is not set"),
    }
    record.generations["local"].grade = records.GradeRecord(
        status="graded", scores={"correctness": 3}, score=1.0, confident_but_wrong=False, grader_model="g")
    return record


def a_manifest(**fields: object) -> records.Manifest:
    return records.Manifest.model_validate({
        "run_id": "r1", "status": "complete",
        "suite": {"name": "s", "path": "s.yaml", "sha256": "0" * 64, "cases": 1, "variants": ["dense"],
                  "metrics": ["ndcg@5", "recall@5"], "answer_metrics": ["must_include_recall", "token_f1"], "k": 5},
        "corpus": {"name": "c", "documents": 2, "fingerprint": "f" * 16},
        "tiers": {"local": {"status": "run"}, "cloud": {"status": "skipped", "reason": "no key"}},
        **fields,
    })


def test_a_record_round_trips_through_the_store(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", a_manifest())
    record = a_record()
    store.append(record)
    [back] = list(RunStore.open(tmp_path / "run").records())
    assert back == record
    assert back.generations["local"].answer_metrics["must_include_recall"] == 1.0
    assert back.generations["local"].cached is False and back.generations["cloud"].grade.status == "unmeasured"
    assert store.completed() == {("ice", "dense")}
    line = json.loads((tmp_path / "run" / "cases.jsonl").read_text())
    assert line["schema_version"] == records.SCHEMA_VERSION
    assert line["generations"]["cloud"]["text"] is None  # unmeasured is written as null, never dropped


def test_written_records_satisfy_the_exported_json_schemas(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", a_manifest())
    store.append(a_record())
    schemas = {name: json.loads(text) for name, text in schema_texts().items()}
    jsonschema.validate(json.loads((tmp_path / "run" / "manifest.json").read_text()), schemas["manifest.schema.json"])
    line = json.loads((tmp_path / "run" / "cases.jsonl").read_text())
    jsonschema.validate(line, schemas["case_record.schema.json"])
    line["generations"]["local"]["grade"]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(line, schemas["case_record.schema.json"])


def test_exported_schemas_are_current() -> None:
    for name, text in schema_texts().items():
        path = SCHEMA_DIR / name
        assert path.exists() and path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run `python -m harness.store.schemas`"
        )


def test_a_newer_manifest_is_refused_with_both_versions_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunStore.create(run, a_manifest())
    data = json.loads((run / "manifest.json").read_text())
    data["schema_version"] = records.SCHEMA_VERSION + 1
    (run / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunStoreError) as caught:
        RunStore.open(run)
    message = str(caught.value)
    assert str(run / "manifest.json") in message
    assert f"schema version {records.SCHEMA_VERSION + 1}" in message and f"{records.SCHEMA_VERSION}" in message
    assert "newer harness" in caught.value.hint


def test_a_newer_or_damaged_record_names_its_line_and_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    store = RunStore.create(run, a_manifest())
    store.append(a_record())
    good = json.loads((run / "cases.jsonl").read_text())
    newer = {**good, "schema_version": 99}
    (run / "cases.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(newer) + "\n")
    with pytest.raises(RunStoreError, match=r"cases\.jsonl:2: run store schema version 99"):
        list(store.records())
    damaged = json.loads(json.dumps(good))
    damaged["retrieval"]["metrics"]["ndcg@5"] = "high"
    (run / "cases.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(damaged) + "\n")
    with pytest.raises(RunStoreError, match=r"cases\.jsonl:2: retrieval\.metrics\.ndcg@5"):
        list(store.records())
    typo = {**good, "varient": "dense"}
    (run / "cases.jsonl").write_text(json.dumps(typo) + "\n")
    with pytest.raises(RunStoreError, match=r"cases\.jsonl:1: varient: Extra inputs"):
        list(store.records())


def test_manifest_updates_are_typed_and_apply_only_what_they_set(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", a_manifest(error="an old error"))
    assert store.update_manifest(records.ManifestFields(status="running")).status == "running"
    with pytest.raises(ValueError, match="status"):  # refused as it is built, before anything is written
        records.ManifestFields(status="finished-ish")  # type: ignore[arg-type]
    assert store.manifest().status == "running" and store.manifest().error == "an old error"
    ended = store.update_manifest(records.ManifestFields(status="complete", error=None))
    assert (ended.status, ended.error) == ("complete", None)  # a field set to None is cleared
    assert ended.suite == a_manifest().suite and ended.run_id == "r1"  # fields left out are kept
    with pytest.raises(RunStoreError, match="status"):  # the whole manifest is validated again on the way in
        store.update_manifest(records.ManifestFields.model_construct(status="finished-ish"))  # type: ignore[arg-type]
    assert store.manifest().status == "complete"  # the bad update wrote nothing


# A version-1 run as the harness wrote it before typed records: dict records, one case-level grade, "version".
V1_MANIFEST = {
    "version": 1, "run_id": "old", "status": "complete", "started_at": "2026-01-01T00:00:00+00:00",
    "suite": {"name": "old", "path": "suites/old.yaml", "sha256": "a" * 64, "cases": 1, "variants": ["dense"],
              "metrics": ["hit@5", "legacy_metric@3"], "k": 5, "config": {}},
    "corpus": {"name": "restoration", "documents": 3, "fingerprint": "b" * 16},
    "tiers": {"local": {"status": "run"}, "cloud": {"status": "skipped", "reason": "ANTHROPIC_API_KEY is not set"}},
    "grader": {"status": "unmeasured", "reason": "grader skipped"},
    "fleet": None, "ann_fidelity": {}, "versions": {"pandas": "2.2"}, "git_commit": None,
}
V1_RECORD = {
    "case_id": "ice", "variant": "dense", "category": "code", "tags": [], "question": "How far?",
    "reference": "36 inches", "must_include": ["36"], "relevant": {"doc-a": 3}, "generate": True,
    "retrieval": {"ranked": [["doc-a", 0.9]], "chunks": ["doc-a#0"], "metrics": {"hit@5": 1.0, "legacy_metric@3": 0.5},
                  "unmeasured_reason": None, "latency_s": 0.01},
    "generations": {
        "local": {"status": "ok", "tier": "local", "text": "36 inches", "host": "h0", "model": "m", "latency_s": 0.3,
                  "usage": {"input_tokens": 40, "output_tokens": 2, "cache_creation_input_tokens": None,
                            "cache_read_input_tokens": None},
                  "timing": {"total_s": None, "load_s": None, "prompt_eval_s": None, "eval_s": 0.1,
                             "time_to_first_token_s": None},
                  "attempts": [{"host": "h0", "outcome": "ok", "latency_s": 0.3, "status": 200, "error": None,
                                "cancelled": False}],
                  "cost_usd": 2e-6, "finish_reason": "stop", "answer_metrics": {"retired_metric": 0.25},
                  "fallback": False},
        "cloud": {"status": "skipped", "tier": "cloud", "reason": "ANTHROPIC_API_KEY is not set"},
    },
    "grade": {"status": "unmeasured", "reason": "grader skipped: ANTHROPIC_API_KEY is not set"},
}


def test_a_version_1_run_is_read_and_reported_with_its_own_metric_names(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(V1_MANIFEST))
    (run / "cases.jsonl").write_text(json.dumps(V1_RECORD) + "\n")
    view = load_run(run)
    assert view.manifest.schema_version == records.SCHEMA_VERSION and view.manifest.suite is not None
    [record] = view.records
    local = record.generations["local"]
    assert local.grade.status == "unmeasured" and "grader skipped" in (local.grade.reason or "")
    assert local.attempts[0].status == 200 and local.timing.eval_s == 0.1
    # Metric names come from the run, not from today's registries.
    assert view.metrics == ["hit@5", "legacy_metric@3"] and view.answer_metric_names == ["retired_metric"]
    assert view.retrieval.loc[0, "legacy_metric@3"] == 0.5
    report = markdown.render(view)
    assert "legacy_metric@3" in report and "retired_metric" in report


def test_a_version_1_graded_record_moves_each_grade_to_its_tier(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    graded = json.loads(json.dumps(V1_RECORD))
    graded["grade"] = {"status": "graded", "by_tier": {
        "local": {"status": "graded", "score": 0.5, "reason": None, "grader": "claude-x", "rationale": "partly"}}}
    (run / "manifest.json").write_text(json.dumps(V1_MANIFEST))
    (run / "cases.jsonl").write_text(json.dumps(graded) + "\n")
    [record] = RunStore.open(run).records()
    grade = record.generations["local"].grade
    assert (grade.status, grade.score, grade.grader_model, grade.rationale) == ("graded", 0.5, "claude-x", "partly")
    assert record.generations["cloud"].grade.status == "unmeasured"


def test_the_generation_frame_carries_the_grade_columns(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "run", a_manifest())
    store.append(a_record())
    view = load_run(tmp_path / "run")
    local = view.generation[view.generation["tier"] == "local"].iloc[0]
    assert (local["grade_status"], local["grade_score"], local["confident_but_wrong"]) == ("graded", 1.0, False)
    assert {"grade_reason", "cached", "must_include_recall", "token_f1"} <= set(view.generation.columns)


def test_a_generation_record_holds_the_provider_types_themselves() -> None:
    """One definition each: the record's usage, timing and attempts are the provider's types, validated in place, so
    a field added to one cannot be missing from the other, and every outcome the dispatcher records is accepted."""
    fields = records.GenerationRecord.model_fields
    assert (fields["usage"].annotation, fields["timing"].annotation) == (Usage, ServerTiming)
    assert fields["attempts"].annotation == list[Attempt]
    generation = Generation(text="x", host="h0", model="m", tier="local", latency_s=0.1,
                            usage=Usage(1, 2, 3, 4), timing=ServerTiming(0.1, 0.0, 0.02, 0.08, 0.01),
                            attempts=tuple(Attempt(host="h0", outcome=o, latency_s=0.1) for o in get_args(Outcome)))
    record = records.generation_record(generation, CASE, answerable=True)
    dumped = record.model_dump(mode="json")
    for name in ("usage", "timing", "attempts"):
        assert dumped[name] == json.loads(json.dumps(dataclasses.asdict(generation)[name]))
    with pytest.raises(ValueError, match="outcome"):
        records.GenerationRecord.model_validate({**dumped, "attempts": [{**dumped["attempts"][0], "outcome": "won"}]})
    with pytest.raises(ValueError, match="cache_reads"):  # unknown fields are refused inside them too
        records.GenerationRecord.model_validate({**dumped, "usage": {**dumped["usage"], "cache_reads": 1}})


def test_a_version_2_grade_gets_the_provider_s_cache_token_names(tmp_path: Path) -> None:
    """Version 2 called a grade's cache tokens cache_read_tokens and cache_write_tokens, in cases.jsonl and in the
    grade log (version 1 of its own); both still read, under the one name the provider types use."""
    run = tmp_path / "v2"
    run.mkdir()
    v2 = a_record().model_dump(mode="json")
    grade = v2["generations"]["local"]["grade"]
    del grade["cache_read_input_tokens"], grade["cache_creation_input_tokens"]
    grade.update(cache_read_tokens=900, cache_write_tokens=40)
    v2["schema_version"] = 2
    (run / "manifest.json").write_text(json.dumps({**a_manifest().model_dump(mode="json"), "schema_version": 2}))
    (run / "cases.jsonl").write_text(json.dumps(v2) + "\n")
    [record] = RunStore.open(run).records()
    back = record.generations["local"].grade
    assert (back.cache_read_input_tokens, back.cache_creation_input_tokens) == (900, 40)
    assert RunStore.open(run).manifest().schema_version == records.SCHEMA_VERSION
    logged = {"schema_version": 1, "case_id": "ice", "variant": "dense", "tier": "local",
              "grade": {"status": "graded", "score": 0.5, "cache_read_tokens": 7, "cache_write_tokens": 0}}
    (run / GRADES).write_text(json.dumps(logged) + "\n")
    from_log = read_grades(run)[("ice", "dense", "local")]
    assert (from_log.cache_read_input_tokens, from_log.cache_creation_input_tokens, from_log.score) == (7, 0, 0.5)


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_run_reads_with_its_replays_marked_and_their_origin_unknown(tmp_path: Path, version: int) -> None:
    """Versions 2 and 3 kept ``cached`` but no cache entry and no cache mode: they lift with those unset."""
    store = RunStore.create(tmp_path / "run", a_manifest())
    record = a_record()
    record.generations["local"].cached = True
    store.append(record)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    line = json.loads((tmp_path / "run" / "cases.jsonl").read_text())
    for data in (manifest, line):
        data["schema_version"] = version
    manifest.pop("cache")
    manifest["verdict"] = {"status": "passed", "max_failure_rate": 0.2,
                           "tiers": {"local": {"calls": 0, "answered": 0, "failed": 0, "failure_rate": None}}}
    line["generations"]["local"].pop("cache_entry")
    line["generations"]["cloud"].pop("cache_entry")
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run" / "cases.jsonl").write_text(json.dumps(line) + "\n")
    view = load_run(tmp_path / "run")
    assert view.manifest.schema_version == records.SCHEMA_VERSION == 5 and view.manifest.cache is None
    assert view.manifest.verdict is not None and view.manifest.verdict.tiers["local"].replayed == 0
    local = view.records[0].generations["local"]
    assert local.cached and local.cache_entry is None
    report = markdown.render(view)
    assert "local 1 of 1 answers (100%; first made on a date this run did not record)" in report
    assert "local tier latency and cost: not measured: all 1 answers replayed from the cache" in report


def test_a_replayed_answer_keeps_its_cache_entry_in_the_record(tmp_path: Path) -> None:
    from harness.providers.types import CacheEntry

    entry = CacheEntry(key="k" * 64, made_at="2026-11-10T02:00:00+00:00", run_id="monday", model_digest="d",
                       digest_source="ollama /api/tags")
    generation = Generation(text="36 inches", host="h0", model="m", tier="local", latency_s=0.2, cached=True,
                            cache_entry=entry)
    kept = records.generation_record(generation, CASE, answerable=True)
    assert kept.cache_entry == entry  # the provider's own type, kept whole
