"""harness label: a blind terminal labeller that resumes, and an import that checks every row or imports nothing."""

from __future__ import annotations

import json
from pathlib import Path

from drift_records import make_records, write_run
from typer.testing import CliRunner

from harness.cli.main import app
from harness.grading.label_sample import graded_answers, label_queue
from harness.store.labels import LABELS, labelled_by, read_labels

HOSTILE = "\x1b[2J[bold red]an answer[/] <b>x</b>"


def run_dir(tmp_path: Path, hostile: bool = False) -> Path:
    records = make_records(cases_per_category=8, graded_share=0.5, seed=4)
    if hostile:  # the first answer anyone is asked about
        case_id, _variant, tier = label_queue(graded_answers(records), "eve", set(), 1, seed=0)[0]
        next(r for r in records if r.case_id == case_id).generations[tier].text = HOSTILE
    return write_run(tmp_path / "run", records)


def invoke(*args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


def test_a_session_writes_labels_blind_stops_on_q_and_the_next_resumes_without_repeats(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    records = make_records(cases_per_category=8, graded_share=0.5, seed=4)
    queue = label_queue(graded_answers(records), "alice", set(), None, seed=0)
    # first answer: ? shows anchors, 5 is refused, then 3 2 1, flag y, a note; second: skip; third: quit mid-way
    output = invoke("label", str(run), "--labeller", "alice", "--n", "5",
                    input="?\n5\n3\n2\n1\ny\ncites the wrong section\ns\n2\nq\n")
    assert "answer 1 of 5" in output and "please type a whole number 0..3" in output
    assert "contradicts the reference on the main point" in output  # the anchors
    shown = output.split("Type q to stop")[1]
    for hidden in ("local", "cloud", "claude-test", "h0", "grade", "0.8"):  # no tier, host, model or grade
        assert hidden not in shown.lower()
    assert "passages" in output.lower() and "not shown" in output
    labels = read_labels(run)
    assert [label.key for label in labels] == queue[:1]
    assert labels[0].scores == {"correctness": 3, "faithfulness": 2, "completeness": 1}
    assert labels[0].confident_but_wrong and labels[0].note == "cites the wrong section"
    # resume: the skipped one comes back first, the labelled one never does
    invoke("label", str(run), "--labeller", "alice", "--n", "2", input="0\n0\n0\nn\n\n1\n1\n1\nn\n\n")
    assert [label.key for label in read_labels(run)] == queue[:3]
    assert labelled_by(run, "bob") == set()
    # end of input stops cleanly too
    invoke("label", str(run), "--labeller", "bob", "--n", "3", input="1\n")
    assert labelled_by(run, "bob") == set()


def test_untrusted_answer_text_cannot_drive_the_terminal_or_carry_markup(tmp_path: Path) -> None:
    run = run_dir(tmp_path, hostile=True)
    output = invoke("label", str(run), "--labeller", "eve", input="q\n")
    assert "\x1b" not in output
    assert "\\x1b[2J[bold red]an answer[/] <b>x</b>" in output


def write_csv(path: Path, rows: list[str]) -> Path:
    header = "case_id,variant,tier,labeller,correctness,faithfulness,completeness,confident_but_wrong,note"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_import_takes_a_good_csv_and_a_bad_one_imports_nothing_naming_each_row(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    graded = sorted(graded_answers(make_records(cases_per_category=8, graded_share=0.5, seed=4)))
    (c1, v1, t1), (c2, v2, t2) = graded[0], graded[1]
    good = write_csv(tmp_path / "good.csv", [f"{c1},{v1},{t1},carol,3,3,2,no,", f"{c2},{v2},{t2},carol,1,2,0,yes,late"])
    assert "imported 2 label(s) by carol" in invoke("label", "import", str(run), str(good))
    assert labelled_by(run, "carol") == {graded[0], graded[1]}
    bad = write_csv(tmp_path / "bad.csv", [
        f"{graded[2][0]},{graded[2][1]},{graded[2][2]},dan,3,3,3,no,",   # fine on its own
        f"nope,{v1},{t1},dan,3,3,3,no,",                                  # unknown answer
        f"{c1},{v1},{t1},dan,4,3,3,no,",                                  # out of range
        f"{c2},{v2},{t2},carol,1,1,1,no,",                                # carol already labelled it
        f"{graded[2][0]},{graded[2][1]},{graded[2][2]},dan,2,2,2,maybe,",  # duplicate in file, bad flag
    ])
    output = invoke("label", "import", str(run), str(bad), code=2)
    assert "nothing was imported" in output
    for row, words in ((3, "unknown answer nope"), (4, "correctness = 4 is out of range"),
                       (5, "duplicate: carol already labelled"), (6, "confident_but_wrong must be yes/no")):
        assert f"bad.csv:{row}:" in output and words in output, (row, words)
    assert len(read_labels(run)) == 2


def test_import_of_json_lines_with_a_scores_object(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    key = sorted(graded_answers(make_records(cases_per_category=8, graded_share=0.5, seed=4)))[0]
    row = {"case_id": key[0], "variant": key[1], "tier": key[2], "labeller": "erin", "confident_but_wrong": False,
           "scores": {"correctness": 2, "faithfulness": 3, "completeness": 3}}
    (tmp_path / "l.jsonl").write_text(json.dumps(row) + "\n" + "{not json\n", encoding="utf-8")
    assert "l.jsonl:2: not JSON" in invoke("label", "import", str(run), str(tmp_path / "l.jsonl"), code=2)
    (tmp_path / "l.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    invoke("label", "import", str(run), str(tmp_path / "l.jsonl"))
    assert [label.scores["correctness"] for label in read_labels(run)] == [2]
    assert (run / LABELS).exists()


def test_passages_are_rebuilt_from_the_corpus_with_each_variants_chunking(tmp_path: Path) -> None:
    from _suites import write_suite

    from harness.cli.label import load_passages
    from harness.corpus.chunking import chunk_corpus
    from harness.run.session import load_suite_and_corpus
    from harness.store.records import CaseRecord, RetrievalRecord

    path = write_suite(tmp_path / "mini.yaml")
    loaded, corpus = load_suite_and_corpus(path)
    chunks = chunk_corpus(corpus, loaded.chunking)
    record = CaseRecord(case_id="c", variant="dense", category="x", question="q",
                        retrieval=RetrievalRecord(ranked=[], chunks=[chunks[2].id, "gone#9", chunks[0].id],
                                                  metrics={}))
    passages = load_passages(tmp_path, str(path), corpus.fingerprint)
    assert passages.reason is None and passages.warning is None
    assert passages.of(record) == [chunks[2].text, "(chunk gone#9 is no longer in the corpus)"]  # context_chunks: 2
    assert "changed" in (load_passages(tmp_path, str(path), "f" * 64).warning or "")
    assert "not here" in (load_passages(tmp_path, str(tmp_path / "nope.yaml"), None).reason or "")
