"""Chunking invariants: stable ids and hashes, size limits, overlap, sections and tables kept intact."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from harness.config.suite import ChunkingConfig
from harness.corpus.chunking import PATH_SEPARATOR, Chunk, chunk_corpus, chunk_document
from harness.corpus.documents import Document, load_corpus

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
CONFIGS = [ChunkingConfig(max_chars=m, overlap=o) for m, o in [(400, 0), (400, 120), (600, 200), (1200, 200)]]
HEADING = re.compile(r"^#{1,6}\s")

SENTENCES = " ".join(f"Sentence number {i} explains one more detail about roof underlayment laps." for i in range(40))
LONG_DOC_BODY = f"""# Long doc

## First section

{SENTENCES}

Second paragraph of the first section, short.

## Second section

### Deep

Deep text with a heading inside a fence:

```
# not a heading
```

| # | Code | Qty |
|---|------|-----|
""" + "".join(f"| {i} | RFG {i:03d}S | {i}.00 |\n" for i in range(1, 60))


def _doc(body: str, doc_id: str = "long-doc", title: str = "Long doc") -> Document:
    return Document(id=doc_id, kind="code", title=title, jurisdiction="Model Code", date="2021-01-01", body=body,
                    path=f"{doc_id}.md")


def _content(chunk: Chunk) -> str:
    return chunk.text.split("\n\n", 1)[1]


def _all_chunks() -> list[tuple[ChunkingConfig, Document, list[Chunk]]]:
    docs = [*load_corpus(MINI), _doc(LONG_DOC_BODY)]
    return [(config, doc, chunk_document(doc, config)) for config in CONFIGS for doc in docs]


def test_ids_and_hashes_are_stable_and_ordered() -> None:
    corpus = load_corpus(MINI)
    for config in CONFIGS:
        first, second = chunk_corpus(corpus, config), chunk_corpus(load_corpus(MINI), config)
        assert [(c.id, c.content_hash) for c in first] == [(c.id, c.content_hash) for c in second]
        for doc in corpus:
            ids = [c.id for c in first if c.doc_id == doc.id]
            assert ids == [f"{doc.id}#{n}" for n in range(len(ids))]
            assert ids, f"{doc.id} produced no chunks"


def test_hash_is_sha256_of_label_and_text() -> None:
    config = CONFIGS[1]
    for chunk in chunk_corpus(load_corpus(MINI), config):
        assert chunk.content_hash == hashlib.sha256(f"{config.label}\n{chunk.text}".encode()).hexdigest()
    a = chunk_document(_doc("Same text."), ChunkingConfig(max_chars=400, overlap=0))[0]
    b = chunk_document(_doc("Same text."), ChunkingConfig(max_chars=400, overlap=50))[0]
    assert a.text == b.text and a.content_hash != b.content_hash


def test_no_chunk_exceeds_max_chars() -> None:
    for config, _, chunks in _all_chunks():
        for chunk in chunks:
            assert len(chunk.text) <= config.max_chars, (config.label, chunk.id, len(chunk.text))


def test_an_unsplittable_word_is_the_only_oversized_chunk() -> None:
    word = "x" * 500
    chunks = chunk_document(_doc(f"Short start. {word} short end."), ChunkingConfig(max_chars=200, overlap=0))
    oversized = [c for c in chunks if len(c.text) > 200]
    assert len(oversized) == 1 and _content(oversized[0]) == word
    assert "".join(_content(c) for c in chunks).replace(" ", "") == f"Shortstart.{word}shortend."


def test_headings_are_respected() -> None:
    for _config, doc, chunks in _all_chunks():
        for chunk in chunks:
            assert chunk.heading_path[0] == doc.title
            assert chunk.text.startswith(chunk.heading + "\n\n")
            span = doc.body[chunk.start:chunk.end]
            # a chunk never spans a heading line (fenced lines are not headings)
            in_fence = False
            for line in span.split("\n"):
                if line.startswith("```"):
                    in_fence = not in_fence
                assert in_fence or not HEADING.match(line), (chunk.id, line)


def test_heading_path_nests_and_skips_repeated_title() -> None:
    chunks = chunk_document(_doc(LONG_DOC_BODY), ChunkingConfig(max_chars=1200, overlap=0))
    paths = {c.heading_path for c in chunks}
    assert ("Long doc", "First section") in paths
    assert ("Long doc", "Second section", "Deep") in paths
    assert all(PATH_SEPARATOR.join(p).count("Long doc") == 1 for p in paths)
    marlow = chunk_document(load_corpus(MINI).get("code-r905-1-2-marlow"), ChunkingConfig())
    assert marlow[-1].text.startswith("R905.1.2 Ice Barrier (Marlow County amendment) > Exception\n\n")


def test_fenced_hash_line_is_not_a_heading() -> None:
    chunks = chunk_document(_doc(LONG_DOC_BODY), ChunkingConfig(max_chars=1200, overlap=0))
    fenced = [c for c in chunks if "# not a heading" in c.text]
    assert len(fenced) == 1 and fenced[0].heading_path[-1] == "Deep"


def test_overlap_carries_a_boundary_aligned_tail() -> None:
    config = ChunkingConfig(max_chars=300, overlap=120)
    chunks = [c for c in chunk_document(_doc(LONG_DOC_BODY), config) if c.heading_path[-1] == "First section"]
    assert len(chunks) > 3
    for previous, current in zip(chunks, chunks[1:], strict=False):
        before, after = _content(previous), _content(current)
        shared = next((n for n in range(min(len(before), len(after)), 0, -1) if before.endswith(after[:n])), 0)
        assert 0 < shared <= config.overlap, (previous.id, current.id, shared)
        assert after[:shared].startswith("Sentence")  # cut at a sentence start, not mid-word
        assert current.start < previous.end  # the spans overlap in the body too


def test_no_overlap_when_zero() -> None:
    chunks = chunk_document(_doc(LONG_DOC_BODY), ChunkingConfig(max_chars=300, overlap=0))
    first = [c for c in chunks if c.heading_path[-1] == "First section"]
    for previous, current in zip(first, first[1:], strict=False):
        assert current.start >= previous.end


def test_tables_split_between_rows_with_header_repeated() -> None:
    doc = _doc(LONG_DOC_BODY)
    rows = {line for line in doc.body.split("\n") if line.startswith("|")}
    header = "| # | Code | Qty |\n|---|------|-----|"
    for config in CONFIGS:
        table_chunks = [c for c in chunk_document(doc, config) if "| RFG " in c.text]
        assert len(table_chunks) > 1, config.label
        seen: set[str] = set()
        for chunk in table_chunks:
            table_part = _content(chunk)[_content(chunk).index("| # |"):]
            assert table_part.startswith(header), chunk.id
            for line in table_part.split("\n"):
                assert line in rows, (chunk.id, line)  # only whole source rows
            seen |= set(table_part.split("\n"))
        assert seen == rows  # every row made it into some chunk


def test_fixture_table_kept_whole_when_it_fits() -> None:
    chunks = chunk_document(load_corpus(MINI).get("est-clm-24-0117-carrier"), ChunkingConfig())
    tables = [c for c in chunks if "| # | Code |" in c.text]
    assert len(tables) == 1 and tables[0].text.count("\n| ") == 7


def test_offsets_point_into_the_body() -> None:
    doc = load_corpus(MINI).get("code-r905-1-2-model")
    for chunk in chunk_document(doc, ChunkingConfig()):
        assert doc.body[chunk.start:chunk.end] == _content(chunk)


@pytest.mark.parametrize("max_chars", [100, 150, 250])
def test_tiny_budgets_still_make_progress(max_chars: int) -> None:
    config = ChunkingConfig(max_chars=max_chars, overlap=max_chars // 2)
    chunks = chunk_document(_doc(LONG_DOC_BODY), config)
    text = "".join(_content(c) for c in chunks)
    for word in ("Sentence number 39", "second paragraph", "RFG 059S"):
        assert word.lower() in text.lower()
