"""The store against a real ``chroma run`` server on loopback, through ``chromadb.HttpClient``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.config.suite import ChunkingConfig, EmbedderConfig
from harness.corpus.documents import load_corpus
from harness.errors import RetrievalError
from harness.retrieval.build import ingest
from harness.retrieval.chroma_store import CHROMA_URL_ENV, ChromaStore, IndexKey
from harness.retrieval.embedders import get_embedder

MINI = Path(__file__).parent / "fixtures" / "mini_corpus"
CHROMA = Path(sys.executable).parent / "chroma"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    if not CHROMA.exists():
        pytest.fail(f"`chroma` CLI not found next to {sys.executable}; it ships with the chromadb package")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "chroma.log").open("w")
    process = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "data"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"chroma run exited with {process.returncode}: {(tmp_path / 'chroma.log').read_text()}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma run did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.mark.chroma_server
def test_ingest_and_query_through_a_chroma_server(chroma_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHROMA_URL_ENV, chroma_server)
    store = ChromaStore()  # no path: the URL comes from the environment
    assert store.url == chroma_server and store.location == chroma_server
    corpus = load_corpus(MINI)
    chunking = ChunkingConfig(max_chars=500, overlap=100)
    embedder = get_embedder(EmbedderConfig())
    first = ingest(corpus, chunking, embedder, store)
    assert first.embedded == first.total > 0
    again = ingest(corpus, chunking, embedder, ChromaStore(url=chroma_server))
    assert again.embedded == 0 and again.unchanged == first.total
    index = store.open(IndexKey(corpus.name, embedder.name, chunking.label), embedder)
    assert index.name in store.collection_names()
    hits = index.query("How many air movers per linear foot of wet wall?", 3)
    assert hits[0].doc_id == "code-s500-drying-industry" and 0 < hits[0].score <= 1


def test_unreachable_server_is_a_retrieval_error() -> None:
    with pytest.raises(RetrievalError) as err:
        ChromaStore(url=f"http://127.0.0.1:{_free_port()}")
    assert "Chroma connect failed" in str(err.value) and "chroma run" in err.value.hint
