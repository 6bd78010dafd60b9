"""Suite and fleet files: valid ones load, and every mistake names the file, the line and the field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.config.fleet import load_fleet
from harness.config.suite import load_suite
from harness.errors import ConfigError

VALID = """\
name: mini
corpus: mini
k: 5
metrics: [recall@5, ndcg@5]
variants:
  - {name: dense, retriever: dense}
  - {name: bm25, retriever: bm25}
cases:
  - id: q1
    question: What width must the ice barrier be?
    reference: 36 inches
    relevant: {doc-a: 3, doc-b: 1}
    category: code-section
  - id: q2
    question: Not covered anywhere?
    category: not-in-corpus
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_valid_suite_loads_with_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, VALID), corpus_ids={"doc-a", "doc-b"})
    assert suite.name == "mini"
    assert [v.name for v in suite.variants] == ["dense", "bm25"]
    assert suite.cases[0].relevant == {"doc-a": 3, "doc-b": 1}
    assert suite.cases[1].relevant == {}
    assert suite.chunking.max_chars == 1200


@pytest.mark.parametrize(
    ("change", "line", "field", "words"),
    [
        (
            ("    category: code-section\n", "    category: code-section\n    colour: red\n"),
            14,
            "cases[0].colour",
            "unknown key 'colour'",
        ),
        (("k: 5", "k: five"), 3, "k", "integer"),
        (("  - id: q2", "  - id: q1"), 14, "cases[1].id", "duplicate case id 'q1'"),
        (("{doc-a: 3, doc-b: 1}", "{doc-a: 7}"), 12, "cases[0].relevant", "grades must be 0..3"),
        (("metrics: [recall@5, ndcg@5]", "metrics: [recall@5, ndgc@5]"), 4, "metrics[1]", "ndgc"),
        (("retriever: bm25", "retriever: sparse"), 7, "variants[1].retriever", "dense"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, field: str, words: str
) -> None:
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: {field}: "), message
    assert words in message


def test_unknown_relevant_ids_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError) as caught:
        load_suite(path, corpus_ids={"doc-a"})
    assert caught.value.line == 12
    assert "unknown document id(s) in case 'q1': doc-b" in str(caught.value)


def test_yaml_syntax_error_and_duplicate_keys_have_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_suite(write(tmp_path, VALID.replace("k: 5", "k: [5")))
    assert caught.value.line is not None and "invalid YAML" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_suite(write(tmp_path, VALID.replace("k: 5", "k: 5\nk: 6")))
    assert caught.value.line == 4 and "duplicate key 'k'" in str(caught.value)


def test_generate_case_needs_generation_section(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("    reference: 36 inches\n", "    reference: 36 inches\n    generate: true\n")
    )
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    assert "generation" in str(caught.value) and caught.value.field == "cases[0].generate"


def test_fleet_file_errors(tmp_path: Path) -> None:
    fleet = write(
        tmp_path,
        """\
        hosts:
          - {name: a, url: "http://127.0.0.1:1", model: m}
          - {name: a, url: "http://127.0.0.1:2", model: m}
        """,
        "fleet.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        load_fleet(fleet)
    assert "duplicate host name(s): a" in str(caught.value) and caught.value.line == 1
    fleet = write(
        tmp_path,
        """\
        strategy: fastest
        hosts: [{name: a, url: "http://127.0.0.1:1", model: m}]
        """,
        "fleet2.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        load_fleet(fleet)
    assert caught.value.line == 1 and "race" in str(caught.value)


def test_cli_reports_a_bad_suite_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("    category: code-section\n", "    category: code-section\n    colour: red\n")
    )
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "run", str(path), "--reports", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert f"{path}:14: cases[0].colour: unknown key 'colour'" in first
