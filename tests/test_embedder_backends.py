"""ONNX embedder backends: exported once and reused, faithful to torch, keyed apart from it, and a clear error
(exit 2, naming the fallback) when they cannot load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.config.suite import ChunkingConfig, EmbedderConfig, load_suite
from harness.corpus.chunking import chunk_corpus
from harness.corpus.documents import load_corpus
from harness.errors import ConfigError, InputError
from harness.retrieval.chroma_store import IndexKey
from harness.retrieval.embedders import bundled_model_path, get_embedder
from harness.retrieval.onnx_embedder import OnnxEmbedder, _load
from harness.retrieval.onnx_export import MARKER, MODELS_DIR_ENV, Export, ensure_export

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
    reference = get_embedder(EmbedderConfig()).embed(texts)
    vectors = int8.embed(texts)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(vectors * reference, axis=1)
    # The guard bench/ingest.py holds the whole corpus to; here on a sample of chunks.
    assert cosine.mean() >= 0.995
    assert cosine.min() >= 0.98
    # Order of the input does not matter (texts are sorted by length inside).
    shuffled = int8.embed(texts[::-1])[::-1]
    assert np.allclose(shuffled, vectors, atol=1e-6)


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
    torch_name = get_embedder(EmbedderConfig()).name
    assert torch_name == "sentence-transformers:all-MiniLM-L6-v2"  # existing indexes keep their key
    assert int8.name == f"sentence-transformers:all-MiniLM-L6-v2@onnx-int8-{int8.export.fingerprint}"
    chunking = ChunkingConfig().label
    assert IndexKey("c", torch_name, chunking).collection_name != IndexKey("c", int8.name, chunking).collection_name
    assert EmbedderConfig(backend="onnx-int8").label != EmbedderConfig().label


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
