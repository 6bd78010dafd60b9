"""Careless corpus files: wrong encodings and impossible dates are input errors naming the file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.corpus.documents import load_corpus
from harness.errors import CorpusError

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"

DOC = """---
id: code-x
kind: code
title: "Caf\u00e9 code"
jurisdiction: Model Code
date: {date}
---
# Caf\u00e9

Body text, with a caf\u00e9.
"""


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mini"
    shutil.copytree(MINI, target)
    return target


def test_a_latin1_document_names_the_line_and_the_expected_encoding(corpus_dir: Path) -> None:
    path = corpus_dir / "codes" / "code-x.md"
    path.write_bytes(DOC.format(date="2021-01-01").encode("latin-1"))
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert f"{path}:4:" in str(err.value)  # the title line holds the first non-UTF-8 byte
    assert "0xe9" in str(err.value) and "UTF-8" in str(err.value) and "iconv" in err.value.hint


def test_a_binary_document_is_an_input_error(corpus_dir: Path) -> None:
    path = corpus_dir / "codes" / "code-x.md"
    path.write_bytes(b"---\nid: code-x\n---\n\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(CorpusError, match=f"{path}:4: byte 0x89"):
        load_corpus(corpus_dir)


@pytest.mark.parametrize("date", ["2024-13-45", "2024-02-30", "2024-00-10"])
def test_an_impossible_date_names_the_field_and_line(corpus_dir: Path, date: str) -> None:
    path = corpus_dir / "codes" / "code-x.md"
    path.write_text(DOC.format(date=date), encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        load_corpus(corpus_dir)
    assert f"{path}:6: date: '{date}' is not an ISO date" in str(err.value)


def test_an_alias_bomb_in_front_matter_is_refused(corpus_dir: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    path = corpus_dir / "codes" / "code-x.md"
    path.write_text(DOC.format(date="2021-01-01").replace("id: code-x\n", "id: code-x\n" + bomb), encoding="utf-8")
    with pytest.raises(CorpusError, match="aliases expand"):
        load_corpus(corpus_dir)
