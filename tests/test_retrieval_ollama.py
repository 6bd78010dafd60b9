"""OllamaEmbedder against a loopback server that speaks Ollama's ``POST /api/embed``."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ollama
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.config.suite import ChunkingConfig, EmbedderConfig
from harness.corpus.documents import load_corpus
from harness.errors import RetrievalError
from harness.retrieval.build import ingest, open_store
from harness.retrieval.embedders import OllamaEmbedder, get_embedder

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
MODEL = "nomic-embed-text"
DIM = 16


def fake_vector(text: str) -> list[float]:
    """Deterministic, deliberately not unit-length, like a raw model output."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(byte - 127.5) / 10 for byte in digest[:DIM]]


@dataclass
class FakeOllama:
    url: str
    requests: list[dict] = field(default_factory=list)


def _app(state: FakeOllama) -> Starlette:
    async def embed(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        if body.get("model") != MODEL:
            return JSONResponse({"error": f'model "{body.get("model")}" not found, try pulling it first'},
                                status_code=404)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"model": MODEL, "embeddings": [fake_vector(t) for t in inputs],
                             "total_duration": 1000, "load_duration": 10, "prompt_eval_count": len(inputs)})

    return Starlette(routes=[Route("/api/embed", embed, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fake_ollama() -> Iterator[FakeOllama]:
    port = _free_port()
    state = FakeOllama(url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "fake Ollama did not start"
    yield state
    server.should_exit = True
    thread.join(timeout=5)


def test_fake_speaks_the_protocol_the_official_client_expects(fake_ollama: FakeOllama) -> None:
    response = ollama.Client(host=fake_ollama.url).embed(model=MODEL, input=["ice barrier"])
    assert list(response.embeddings[0]) == pytest.approx(fake_vector("ice barrier"))


def test_embeds_in_batches_and_normalises(fake_ollama: FakeOllama) -> None:
    fake_ollama.requests.clear()
    embedder = OllamaEmbedder(MODEL, url=fake_ollama.url, batch_size=2)
    texts = [f"text {i}" for i in range(5)]
    vectors = embedder.embed(texts)
    assert [r["input"] for r in fake_ollama.requests] == [texts[0:2], texts[2:4], texts[4:5]]
    assert all(r["model"] == MODEL for r in fake_ollama.requests)
    assert vectors.dtype == np.float32 and vectors.shape == (5, DIM) and embedder.dimension == DIM
    raw = np.array([fake_vector(t) for t in texts])
    assert np.allclose(vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert embedder.name == f"ollama:{MODEL}"


def test_registry_builds_ollama_from_config(fake_ollama: FakeOllama) -> None:
    config = EmbedderConfig(kind="ollama", model=MODEL, url=fake_ollama.url, batch_size=8)
    embedder = get_embedder(config)
    assert isinstance(embedder, OllamaEmbedder) and get_embedder(config) is embedder
    assert embedder.embed(["x"]).shape == (1, DIM)


def test_unknown_model_says_to_pull_it(fake_ollama: FakeOllama) -> None:
    with pytest.raises(RetrievalError) as err:
        OllamaEmbedder("missing-model", url=fake_ollama.url).embed(["x"])
    assert "HTTP 404" in str(err.value) and "not found" in str(err.value)
    assert err.value.hint == "run `ollama pull missing-model`"


def test_unreachable_server_is_a_retrieval_error() -> None:
    with pytest.raises(RetrievalError) as err:
        OllamaEmbedder(MODEL, url=f"http://127.0.0.1:{_free_port()}", timeout=2).embed(["x"])
    assert "failed" in str(err.value) and "ollama serve" in err.value.hint


def test_ingest_through_ollama_embeddings(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    embedder = OllamaEmbedder(MODEL, url=fake_ollama.url)
    store = open_store(tmp_path)
    corpus = load_corpus(MINI)
    chunking = ChunkingConfig(max_chars=500, overlap=100)
    first = ingest(corpus, chunking, embedder, store)
    assert first.embedded == first.total > 0
    assert ingest(corpus, chunking, embedder, store).embedded == 0
