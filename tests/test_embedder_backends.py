"""ONNX embedder backends: exported once and reused, faithful to torch, keyed apart from it, and a clear error
(exit 2, naming the fallback) when they cannot load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.config.suite import DEFAULT_BACKEND, ChunkingConfig, EmbedderConfig, load_suite
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.errors import ConfigError, InputError
from harness.retrieval.chroma_store import IndexKey
from harness.retrieval.embedders import bundled_model_path, get_embedder
from harness.retrieval.onnx_embedder import OnnxEmbedder, _load
from harness.retrieval.onnx_export import MARKER, MODELS_DIR_ENV, PROBE_FILE, PROBE_TEXTS, Export, ensure_export

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_DIR_ENV, str(path))
        ensure_export("all-MiniLM-L6-v2", bundled_model_path(), "onnx-int8")  # once for the module
    return path


@pytest.fixture
def int8(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> OnnxEmbedder:
    monkeypatch.setenv(MODELS_DIR_ENV, str(models_dir))
    return OnnxEmbedder("all-MiniLM-L6-v2", bundled_model_path(), "onnx-int8", batch_size=16)


def test_int8_vectors_stay_close_to_torch_on_a_sample(int8: OnnxEmbedder) -> None:
    texts = [chunk.text for chunk in chunk_corpus(load_corpus(MINI), ChunkingConfig(max_chars=600, overlap=150))]
    texts = texts[:40]
    reference = get_embedder(EmbedderConfig(backend="torch")).embed(texts)
    vectors = int8.embed(texts)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(vectors * reference, axis=1)
    # The guard bench/ingest.py holds the whole corpus to; here on a sample of chunks.
    assert cosine.mean() >= 0.995
    assert cosine.min() >= 0.98
    # Each text runs alone, so neither the order of the input nor a text's batch-mates change its vector (in a
    # batch, int8's per-tensor activation scale would).
    assert np.array_equal(int8.embed(texts[::-1])[::-1], vectors)
    assert np.array_equal(int8.embed([texts[7]])[0], vectors[7])


def test_the_export_is_made_once_and_reused(int8: OnnxEmbedder, models_dir: Path) -> None:
    export = int8.export
    assert export.path.parent == models_dir
    assert export.path.name.startswith("all-MiniLM-L6-v2-onnx-int8-")
    marker = export.path / MARKER
    before = marker.stat().st_mtime_ns
    again = ensure_export("all-MiniLM-L6-v2", bundled_model_path(), "onnx-int8")
    assert again.path == export.path and marker.stat().st_mtime_ns == before
    settings = json.loads(marker.read_text())
    # What made the vectors is on record: exporter, quantization and the tools' versions.
    assert settings["recipe"]["quantize"]["weight_type"] == "QInt8"
    assert settings["recipe"]["quantize"]["per_channel"] is True
    assert settings["versions"]["onnxruntime"] and "opset" in settings["exporter"]


def test_backends_never_share_an_index(int8: OnnxEmbedder) -> None:
    torch_name = get_embedder(EmbedderConfig(backend="torch")).name
    assert torch_name == "sentence-transformers:all-MiniLM-L6-v2"  # existing indexes keep their key
    assert int8.name == f"sentence-transformers:all-MiniLM-L6-v2@onnx-int8-{int8.export.fingerprint}"
    chunking = ChunkingConfig().label
    assert IndexKey("c", torch_name, chunking).collection_name != IndexKey("c", int8.name, chunking).collection_name
    assert EmbedderConfig(backend="onnx-int8").label != EmbedderConfig(backend="torch").label


def test_a_backend_that_cannot_load_is_an_input_error_naming_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not an onnx graph")
    (tmp_path / "tokenizer.json").write_text("{}")
    broken = Export(tmp_path, tmp_path / "model.onnx", {"backend": "onnx-int8", "fingerprint": "0"})
    with pytest.raises(InputError) as info:
        _load(broken)
    assert info.value.exit_code == 2
    assert "backend: torch" in info.value.hint


def test_backend_is_only_for_sentence_transformers(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("embedder: {kind: ollama, model: nomic-embed-text, backend: onnx-int8}\n"
                     "cases:\n  - {id: q, question: 'q', category: c}\n")
    with pytest.raises(ConfigError, match="backend"):
        load_suite(suite)
    suite.write_text("embedder: {backend: tensorrt}\ncases:\n  - {id: q, question: 'q', category: c}\n")
    with pytest.raises(ConfigError, match="onnx-int8"):
        load_suite(suite)


def test_an_export_that_drifts_from_the_model_on_this_cpu_is_refused(int8: OnnxEmbedder, tmp_path: Path) -> None:
    # As if the int8 kernels of this CPU lost precision: the probe's torch vectors no longer match what runs here.
    copy = tmp_path / "drifted"
    shutil.copytree(int8.export.path, copy)
    reference = np.load(copy / PROBE_FILE)
    rotated = np.roll(reference, 1, axis=1)  # unit rows still, but another direction
    np.save(copy / PROBE_FILE, rotated / np.linalg.norm(rotated, axis=1, keepdims=True))
    with pytest.raises(InputError) as info:
        _load(Export(copy, copy / "model.onnx", dict(int8.export.settings)))
    assert info.value.exit_code == 2
    assert "drifts from the model on this CPU" in str(info.value)
    assert "backend: onnx" in info.value.hint and "backend: torch" in info.value.hint
    # The export as made passes: its probe vectors are the torch model's, within the guard.
    torch_vectors = get_embedder(EmbedderConfig(backend="torch")).embed(list(PROBE_TEXTS))
    assert np.allclose(reference, torch_vectors, atol=1e-5)
    assert float(np.min(np.sum(int8.embed(list(PROBE_TEXTS)) * reference, axis=1))) >= 0.98


def test_the_default_backend_is_int8_for_sentence_transformers_only(tmp_path: Path) -> None:
    assert DEFAULT_BACKEND == "onnx-int8"
    assert EmbedderConfig().backend == "onnx-int8"
    assert EmbedderConfig().label == "sentence-transformers:all-MiniLM-L6-v2@onnx-int8"
    assert EmbedderConfig(kind="ollama", model="nomic-embed-text").backend is None
    assert EmbedderConfig(kind="ollama", model="nomic-embed-text").label == "ollama:nomic-embed-text"
    suite = tmp_path / "s.yaml"
    suite.write_text("embedder: {backend: torch}\ncases:\n  - {id: q, question: 'q', category: c}\n")
    assert load_suite(suite).embedder.label == "sentence-transformers:all-MiniLM-L6-v2"  # torch keeps its index
    suite.write_text("cases:\n  - {id: q, question: 'q', category: c}\n")
    assert load_suite(suite).embedder.backend == DEFAULT_BACKEND


def test_making_an_export_leaves_the_root_logger_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime's quantizer installs a root handler; left there, every library's debug lines (bm25s logs at DEBUG)
    # would print in the middle of `harness nightly`.
    import logging

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in the CLI: pytest's own handlers would make basicConfig a no-op
    before = (root.level, list(root.handlers))
    ensure_export("all-MiniLM-L6-v2", bundled_model_path(), "onnx-int8")
    assert (root.level, list(root.handlers)) == before
