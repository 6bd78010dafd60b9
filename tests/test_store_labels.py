"""labels.jsonl: typed human labels, appended under a lock, never twice per labeller and answer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.errors import InputError, RunStoreError
from harness.store.labels import LABELS, LabelRecord, append_labels, check_labeller, labelled_by, read_labels

SCORES = {"correctness": 3, "faithfulness": 2, "completeness": 1}


def label(case: str, labeller: str = "alice", tier: str = "local", **extra: object) -> LabelRecord:
    return LabelRecord(case_id=case, variant="dense", tier=tier, labeller=labeller, scores=SCORES,
                       confident_but_wrong=False, **extra)  # type: ignore[arg-type]


def test_labels_round_trip_with_their_score_on_the_graders_scale(tmp_path: Path) -> None:
    append_labels(tmp_path, [label("c1"), label("c2", note="cites the wrong code section")])
    read = read_labels(tmp_path)
    assert [r.case_id for r in read] == ["c1", "c2"]
    assert read[1].note == "cites the wrong code section"
    assert read[0].score == pytest.approx(6 / 9)  # (3 + 2 + 1) / (3 × 3)
    assert labelled_by(tmp_path, "alice") == {("c1", "dense", "local"), ("c2", "dense", "local")}
    assert labelled_by(tmp_path, "bob") == set()


def test_a_second_label_of_one_answer_by_one_labeller_is_refused_and_the_batch_writes_nothing(tmp_path: Path) -> None:
    append_labels(tmp_path, [label("c1")])
    with pytest.raises(InputError, match="already labelled answer c1/dense/local"):
        append_labels(tmp_path, [label("c2"), label("c1")])
    assert [r.case_id for r in read_labels(tmp_path)] == ["c1"]
    append_labels(tmp_path, [label("c1", labeller="bob")])  # another person may label the same answer
    with pytest.raises(InputError):
        append_labels(tmp_path, [label("c3"), label("c3")])  # a duplicate inside one batch too
    assert len(read_labels(tmp_path)) == 2


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({"correctness": 3, "faithfulness": 2}, "missing: completeness"),
        ({**SCORES, "style": 1}, "unknown: style"),
        ({**SCORES, "correctness": 4}, "must be 0..3"),
    ],
)
def test_scores_must_name_every_criterion_in_range(scores: dict[str, int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabelRecord(case_id="c", variant="v", tier="t", labeller="a", scores=scores, confident_but_wrong=True)


def test_labeller_ids_are_identifiers() -> None:
    assert check_labeller("alice.b@example") == "alice.b@example"
    for bad in ("", "../x", "<script>", "a b"):
        with pytest.raises(InputError, match="not a valid id"):
            check_labeller(bad)
    with pytest.raises(ValidationError):
        label("c1", labeller="<b>x</b>")


def test_a_torn_last_line_is_ignored_and_a_damaged_middle_line_names_its_line(tmp_path: Path) -> None:
    append_labels(tmp_path, [label("c1"), label("c2")])
    path = tmp_path / LABELS
    path.write_text(path.read_text() + '{"case_id": "c3", "varia')
    assert len(read_labels(tmp_path)) == 2
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(RunStoreError, match=r"labels.jsonl:2: damaged label"):
        read_labels(tmp_path)


def test_concurrent_labellers_lose_nothing(tmp_path: Path) -> None:
    def work(who: str) -> None:
        for i in range(25):
            append_labels(tmp_path, [label(f"c{i}", labeller=who)])

    threads = [threading.Thread(target=work, args=(name,)) for name in ("alice", "bob", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read = read_labels(tmp_path)
    assert len(read) == 75
    expected = {(who, f"c{i}") for who in ("alice", "bob", "carol") for i in range(25)}
    assert {(r.labeller, r.case_id) for r in read} == expected


def test_merging_shards_joins_their_labels_and_claims(tmp_path: Path) -> None:
    from drift_records import make_records

    from harness.store.claims_log import ClaimRecord, ClaimsEntry, ClaimsRecord, append_claims, read_claims
    from harness.store.merge import merge_runs
    from harness.store.records import Manifest, ShardInfo, SuiteInfo
    from harness.store.store import RunStore

    records = make_records(cases_per_category=4, graded_share=1.0)
    halves = [records[::2], records[1::2]]
    suite = SuiteInfo(name="s", path="s.yaml", sha256="0" * 64, cases=len(records), variants=["dense"], metrics=[], k=5)
    shards = []
    for index, half in enumerate(halves, start=1):
        shard = ShardInfo(index=index, count=2, suite_cases=len(records), case_ids=[r.case_id for r in half])
        store = RunStore.create(tmp_path / f"s{index}", Manifest(run_id=f"s{index}", suite=suite, shard=shard))
        for record in half:
            store.append(record)
        store.release()
        append_labels(store.path, [label(half[0].case_id, tier="cloud"), label(half[1].case_id, labeller="bob")])
        claim = ClaimRecord(text=f"claim of shard {index}", passages=["entailed"], other="neutral")
        append_claims(store.path, [
            ClaimsEntry(case_id=half[0].case_id, variant="dense", tier="cloud",
                        claims=ClaimsRecord(status="diagnosed", passages=["p1"], answer_claims=[claim])),
            ClaimsEntry(case_id=half[1].case_id, variant="dense", tier="local",
                        claims=ClaimsRecord(status="unmeasured", reason="no reference")),
        ])
        shards.append(store.path)
    merge_runs(shards, tmp_path / "joined")
    shard_claims = {key: value for path in shards for key, value in read_claims(path).items()}
    assert len(shard_claims) == 4
    assert read_claims(tmp_path / "joined") == shard_claims
    joined = read_labels(tmp_path / "joined")
    assert len(joined) == 4
    assert labelled_by(tmp_path / "joined", "alice") == {(halves[0][0].case_id, "dense", "cloud"),
                                                       (halves[1][0].case_id, "dense", "cloud")}
