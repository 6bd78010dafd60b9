"""The Chroma store with the real MiniLM: incremental ingest, cosine scores, ANN fidelity."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from harness.config.suite import ChunkingConfig, EmbedderConfig
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.retrieval.build import ingest, open_store
from harness.retrieval.chroma_store import HNSW_CONFIG, ChromaStore, IndexKey
from harness.retrieval.embedders import SentenceTransformerEmbedder, get_embedder
from harness.retrieval.exact import ExactIndex
from harness.run.fidelity import ann_fidelity_at_k

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
CHUNKING = ChunkingConfig(max_chars=400, overlap=100)
QUERIES = [
    "How far inside the exterior wall must the ice barrier reach in Marlow County?",
    "air movers per linear foot of wet wall",
    "contractor estimate total with overhead and profit",
    "nails per shingle in the high wind zone",
    "is a detached shed exempt from the ice barrier rule",
]


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.batch_size = inner.batch_size
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = get_embedder(EmbedderConfig(backend="torch"))  # the model as trained; ONNX has its own tests
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mini"
    shutil.copytree(MINI, target)
    return target


def test_bundled_embedder_is_unit_length_float32(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed(["ice barrier", "drip edge"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, minilm.dimension) == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert get_embedder(EmbedderConfig(backend="torch")) is minilm  # one model per process


def test_collection_name_ignores_content_and_follows_config(corpus_dir: Path) -> None:
    key = IndexKey("mini", "sentence-transformers:all-MiniLM-L6-v2", CHUNKING.label)
    assert re.fullmatch(r"rh-[0-9a-f]{12}", key.collection_name)
    assert IndexKey("mini", key.embedder, "sec800o100").collection_name != key.collection_name
    assert IndexKey("mini", "ollama:nomic-embed-text", key.chunking).collection_name != key.collection_name
    assert IndexKey("other", key.embedder, key.chunking).collection_name != key.collection_name


def test_collection_is_cosine_hnsw_with_our_parameters(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    store = ChromaStore(tmp_path / "chroma")
    index = store.open(IndexKey("mini", minilm.name, CHUNKING.label), minilm)
    hnsw = index.collection.configuration_json["hnsw"]
    assert {k: hnsw[k] for k in HNSW_CONFIG} == HNSW_CONFIG
    assert index.collection.metadata["embedder"] == minilm.name
    assert index.collection.metadata["chunking"] == CHUNKING.label


def test_incremental_ingest(tmp_path: Path, corpus_dir: Path, minilm: SentenceTransformerEmbedder) -> None:
    store = open_store(tmp_path / "store")
    counter = CountingEmbedder(minilm)
    corpus = load_corpus(corpus_dir)
    before = {c.id: c.content_hash for c in chunk_corpus(corpus, CHUNKING)}

    first = ingest(corpus, CHUNKING, counter, store)
    assert (first.total, first.added, first.embedded, first.deleted) == (len(before), len(before), len(before), 0)
    assert len(counter.texts) == len(before)

    # Unchanged corpus: nothing embedded, nothing written.
    counter.texts.clear()
    again = ingest(load_corpus(corpus_dir), CHUNKING, counter, open_store(tmp_path / "store"))
    assert (again.embedded, again.unchanged, again.added, again.updated, again.deleted) == (0, len(before), 0, 0, 0)
    assert counter.texts == []

    # Edit one sentence of one document: only that document's changed chunks are embedded.
    path = corpus_dir / "codes" / "code-r905-1-2-port-ellis.md"
    path.write_text(path.read_text().replace("six nails per shingle", "eight nails per shingle"))
    corpus = load_corpus(corpus_dir)
    after = {c.id: c.content_hash for c in chunk_corpus(corpus, CHUNKING)}
    changed = {cid for cid in after if before.get(cid) != after[cid]}
    assert changed and all(cid.startswith("code-r905-1-2-port-ellis#") for cid in changed)
    counter.texts.clear()
    edit = ingest(corpus, CHUNKING, counter, store)
    assert edit.updated == edit.embedded == len(changed)
    assert edit.unchanged == len(after) - len(changed)
    assert all("eight nails" in text for text in counter.texts)
    index = store.open(IndexKey(corpus.name, minilm.name, CHUNKING.label), minilm)
    assert index.stored_hashes() == after

    # Delete a document: its chunks leave the collection.
    (corpus_dir / "codes" / "code-s500-drying-industry.md").unlink()
    corpus = load_corpus(corpus_dir)
    gone = [cid for cid in after if cid.startswith("code-s500-drying-industry#")]
    counter.texts.clear()
    removal = ingest(corpus, CHUNKING, counter, store)
    assert (removal.deleted, removal.embedded) == (len(gone), 0)
    assert not set(gone) & set(index.stored_hashes())
    assert index.count() == len(after) - len(gone)
    assert all(hit.doc_id != "code-s500-drying-industry" for hit in index.query("air movers per wet wall", 10))


def test_renumbered_chunks_reuse_stored_vectors(tmp_path: Path, corpus_dir: Path,
                                                minilm: SentenceTransformerEmbedder) -> None:
    store = open_store(tmp_path / "store")
    counter = CountingEmbedder(minilm)
    ingest(load_corpus(corpus_dir), CHUNKING, counter, store)
    # A new section at the top shifts every later chunk id of the document by one; their texts are unchanged.
    path = corpus_dir / "codes" / "code-r905-1-2-model.md"
    text = path.read_text()
    path.write_text(text.replace("## Requirement", "## Scope\n\nApplies to steep-slope roofs.\n\n## Requirement"))
    counter.texts.clear()
    report = ingest(load_corpus(corpus_dir), CHUNKING, counter, store)
    assert report.added == 1 and report.updated >= 1
    assert report.embedded == 1 and counter.texts == [
        "R905.1.2 Ice Barrier (Model Code) > Scope\n\nApplies to steep-slope roofs."]
    # the reused vectors sit under their new ids: each stored vector is the embedding of its chunk's text
    index = store.open(IndexKey("mini", minilm.name, CHUNKING.label), minilm)
    ids, _, matrix = index.embeddings()
    texts = {c.id: c.text for c in chunk_corpus(load_corpus(corpus_dir), CHUNKING)}
    mine = [i for i, cid in enumerate(ids) if cid.startswith("code-r905-1-2-model#")]
    expected = minilm.embed([texts[ids[i]] for i in mine])
    assert np.allclose(matrix[mine], expected, atol=1e-4)


def test_query_scores_are_cosine_similarities(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    store = open_store(tmp_path / "store")
    corpus = load_corpus(MINI)
    ingest(corpus, CHUNKING, minilm, store)
    index = store.open(IndexKey(corpus.name, minilm.name, CHUNKING.label), minilm)
    texts = {c.id: c.text for c in chunk_corpus(corpus, CHUNKING)}
    query = QUERIES[0]
    hits = index.query(query, 5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    q = minilm.embed([query])[0]
    for hit in hits:  # independent oracle: re-embed the chunk text and take the dot product
        assert hit.text == texts[hit.chunk_id]
        assert hit.score == pytest.approx(float(minilm.embed([texts[hit.chunk_id]])[0] @ q), abs=1e-4)
    assert hits[0].doc_id in {"code-r905-1-2-marlow", "code-r905-1-2-marlow-2019"}


def test_ann_fidelity_is_one_on_a_tiny_index(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    store = open_store(tmp_path / "store")
    corpus = load_corpus(MINI)
    ingest(corpus, CHUNKING, minilm, store)
    index = store.open(IndexKey(corpus.name, minilm.name, CHUNKING.label), minilm)
    assert ann_fidelity_at_k(index, QUERIES, k=5) == 1.0
    exact = ExactIndex(index)
    assert exact.matrix.shape == (index.count(), 384)
    for query in QUERIES:
        assert [h.chunk_id for h in exact.query(query, 5)] == [h.chunk_id for h in index.query(query, 5)]
    assert ann_fidelity_at_k(index, [], k=5) is None


_QUERY_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from harness.config.suite import ChunkingConfig, EmbedderConfig
from harness.corpus.documents import load_corpus
from harness.retrieval.build import open_store
from harness.retrieval.chroma_store import IndexKey
from harness.retrieval.embedders import get_embedder
corpus = load_corpus(Path(sys.argv[1]))
embedder = get_embedder(EmbedderConfig())
index = open_store(Path(sys.argv[2])).open(IndexKey(corpus.name, embedder.name, ChunkingConfig().label), embedder)
questions = json.loads(Path(sys.argv[3]).read_text())
print(json.dumps([[hit.chunk_id for hit in hits] for hits in index.query_many(embedder.embed(questions), 30)]))
"""


def test_every_process_that_opens_an_index_gets_the_same_rankings(tmp_path: Path) -> None:
    """Chroma's HNSW graph must be saved whole: a graph rebuilt on open ranks near ties differently in each process."""
    import json
    import os
    import subprocess
    import sys

    restoration = Path(__file__).parents[1] / "corpora" / "restoration"
    corpus = load_corpus(restoration)
    embedder = get_embedder(EmbedderConfig())
    ingest(corpus, ChunkingConfig(), embedder, open_store(tmp_path / "store"))  # 695 chunks: not a multiple of 100
    sentences = [line.strip() for doc in corpus for line in doc.body.splitlines() if len(line.split()) >= 8]
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([" ".join(s.split()[:14]) for s in sentences[:1500]]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    runs = [subprocess.run([sys.executable, "-c", _QUERY_IN_A_FRESH_PROCESS, str(restoration), str(tmp_path / "store"),
                            str(questions)], capture_output=True, text=True, env=env, check=True).stdout
            for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert len(json.loads(runs[0])) == 1500
