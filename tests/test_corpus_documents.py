"""Corpus loading: the fixture loads; every malformed file is reported by name (and line where there is one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.corpus.documents import load_corpus, resolve_corpus
from harness.errors import CorpusError, InputError

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"

GOOD = """---
id: {id}
kind: code
title: "T {id}"
jurisdiction: Model Code
date: 2021-01-01
---
# T {id}

Body text.
"""


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mini"
    shutil.copytree(MINI, target)
    return target


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_fixture_loads_with_typed_fields() -> None:
    corpus = load_corpus(MINI)
    assert corpus.name == "mini_corpus"
    assert len(corpus) == 8
    assert "README" not in " ".join(corpus.ids)
    assert corpus.ids == sorted(corpus.ids, key=lambda i: corpus.get(i).path)
    marlow = corpus.get("code-r905-1-2-marlow")
    assert marlow.kind == "code"
    assert marlow.jurisdiction == "Marlow County"
    assert marlow.date == "2023-03-01"
    assert marlow.section == "R905.1.2"
    assert marlow.references == ("code-r905-1-2-model",)
    assert marlow.supersedes == "code-r905-1-2-marlow-2019"
    assert corpus.get("code-r905-1-2-marlow-2019").superseded_by == "code-r905-1-2-marlow"
    assert corpus.get("est-clm-24-0117-carrier").claim == "CLM-24-0117"
    assert corpus.get("est-clm-24-0117-carrier").meta["version"] == "carrier"
    assert marlow.path == "codes/code-r905-1-2-marlow.md"
    assert marlow.body.lstrip().startswith("# R905.1.2 Ice Barrier (Marlow County amendment)")
    # body_line points at the first body line of the file
    file_lines = (MINI / marlow.path).read_text().split("\n")
    assert file_lines[marlow.body_line - 1:] == marlow.body.split("\n")
    assert {d.jurisdiction for d in corpus} >= {"Marlow County", "City of Port Ellis", "Model Code"}


def test_fingerprint_is_stable_across_locations_and_sees_edits(corpus_dir: Path) -> None:
    original = load_corpus(MINI).fingerprint
    assert load_corpus(corpus_dir).fingerprint == original
    crlf = corpus_dir / "codes" / "code-r905-1-2-model.md"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))
    assert load_corpus(corpus_dir).fingerprint == original  # line endings from a Windows checkout don't count
    crlf.write_text(crlf.read_text().replace("24 inches", "25 inches"))
    assert load_corpus(corpus_dir).fingerprint != original


def test_get_unknown_id_raises() -> None:
    with pytest.raises(CorpusError, match="no document 'nope'"):
        load_corpus(MINI).get("nope")


def test_missing_front_matter_names_file(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-x.md", "# Just a heading\n")
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert f"{bad}:1" in str(err.value)
    assert "missing front matter" in str(err.value)
    assert err.value.hint


def test_unclosed_front_matter(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-x.md", "---\nid: code-x\nkind: code\n")
    with pytest.raises(CorpusError, match="not closed") as err:
        load_corpus(corpus_dir)
    assert str(bad) in str(err.value)


def test_missing_required_fields_are_listed(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-x.md", "---\nid: code-x\nkind: code\ntitle: X\n---\nbody\n")
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert str(bad) in str(err.value)
    assert "jurisdiction, date" in str(err.value)


def test_bad_kind_names_file_and_line(corpus_dir: Path) -> None:
    text = GOOD.format(id="code-x").replace("kind: code", "kind: memo")
    bad = _write(corpus_dir / "codes" / "code-x.md", text)
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert f"{bad}:3:" in str(err.value)  # `kind:` is on line 3 of the file
    assert "'memo'" in str(err.value)


def test_id_must_equal_file_stem(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-y.md", GOOD.format(id="code-x"))
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert f"{bad}:2:" in str(err.value)
    assert "code-y.md" in str(err.value) and "code-x" in str(err.value)


def test_duplicate_id_names_both_files(corpus_dir: Path) -> None:
    first = corpus_dir / "codes" / "code-r905-1-2-model.md"
    second = _write(corpus_dir / "other" / "code-r905-1-2-model.md", GOOD.format(id="code-r905-1-2-model"))
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    message = str(err.value)
    assert "duplicate id" in message
    assert str(first) in message and str(second) in message


def test_dangling_references_are_all_listed(corpus_dir: Path) -> None:
    text = GOOD.format(id="code-x").replace("date: 2021-01-01", "date: 2021-01-01\nreferences: [ghost-a, "
                                             "code-r905-1-2-model, ghost-b]\nsuperseded_by: ghost-c")
    bad = _write(corpus_dir / "codes" / "code-x.md", text)
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    message = str(err.value)
    assert f"{bad}:7: references points at unknown id(s): ghost-a, ghost-b" in message
    assert f"{bad}:8: superseded_by points at unknown id(s): ghost-c" in message


def test_invalid_yaml_reports_line(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-x.md", "---\nid: code-x\nkind: [code\ntitle: x\n---\nbody\n")
    with pytest.raises(CorpusError, match="not valid YAML") as err:
        load_corpus(corpus_dir)
    assert str(bad) in str(err.value)


def test_bad_date(corpus_dir: Path) -> None:
    bad = _write(corpus_dir / "codes" / "code-x.md", GOOD.format(id="code-x").replace("2021-01-01", "March 2021"))
    with pytest.raises(CorpusError, match="not an ISO date") as err:
        load_corpus(corpus_dir)
    assert f"{bad}:6:" in str(err.value)


def test_corpus_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_corpus(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .md documents"):
        load_corpus(tmp_path / "empty")


def test_resolve_corpus_by_name_and_path(tmp_path: Path) -> None:
    (tmp_path / "corpora" / "alpha").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    assert resolve_corpus("alpha", tmp_path) == tmp_path / "corpora" / "alpha"
    assert resolve_corpus("./elsewhere", tmp_path) == tmp_path / "elsewhere"
    assert resolve_corpus(str(MINI), tmp_path) == MINI
    with pytest.raises(CorpusError) as err:
        resolve_corpus("beta", tmp_path)
    assert "beta" in str(err.value) and "alpha" in err.value.hint
