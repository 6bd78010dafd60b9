"""A sentence-transformers model run by onnxruntime from its ONNX export (see :mod:`.onnx_export`).

Queries and corpus chunks go through the same export, so an index and its queries always share a backend. Texts are
tokenised by the model's own ``tokenizer.json`` (the fast tokenizer sentence-transformers uses, with the same
truncation), sorted by length so each batch pads little, run, and put back in order. Loading needs neither torch
nor transformers once the export exists.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.retrieval.embedders import normalise
from harness.retrieval.onnx_export import Export, ensure_export

_SESSIONS: dict[Path, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def _load(export: Export) -> tuple[Any, Any]:
    """(onnxruntime session, tokenizer) for an export, once per process."""
    with _LOCK:
        if export.path in _SESSIONS:
            return _SESSIONS[export.path]
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(export.model_file), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(export.path / "tokenizer.json"))
        except Exception as exc:  # e.g. an int8 kernel this CPU lacks, a damaged file, a missing package
            raise InputError(
                f"embedder backend {export.settings.get('backend')!r} could not load {export.model_file}: "
                f"{type(exc).__name__}: {exc}",
                hint="fall back to `backend: torch` in the suite's embedder (or delete the export directory to "
                     "rebuild it)",
            ) from exc
        tokenizer.enable_truncation(max_length=int(export.settings.get("max_seq_length", 256)))
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=pad_id or 0, pad_token="[PAD]" if pad_id is not None else "<pad>")
        _SESSIONS[export.path] = (session, tokenizer)
        return session, tokenizer


class OnnxEmbedder:
    """The model exported to ONNX (``backend="onnx"``) or exported and quantized (``backend="onnx-int8"``).

    Args:
        model: the model's name, as in the suite.
        source: its local weights directory.
        backend: ``onnx`` or ``onnx-int8``.
        batch_size: texts per forward pass.
    """

    kind = "sentence-transformers"

    def __init__(self, model: str, source: Path, backend: str, *, batch_size: int = 64) -> None:
        self.model = model
        self.source = source
        self.backend = backend
        self.batch_size = batch_size
        self._export: Export | None = None
        self._lock = threading.Lock()

    @property
    def export(self) -> Export:
        if self._export is None:
            self._export = ensure_export(self.model, self.source, self.backend)
        return self._export

    @property
    def name(self) -> str:
        """Keys the index: the backend and the export's fingerprint (recipe, weights, tool versions)."""
        return f"{self.kind}:{self.model}@{self.backend}-{self.export.fingerprint}"

    @property
    def dimension(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])

    def describe(self) -> dict[str, Any]:
        """What made the vectors, for the manifest: exporter, optimiser, quantization and tool versions."""
        settings = dict(self.export.settings)
        settings["path"] = str(self.export.path)
        return settings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        session, tokenizer = _load(self.export)
        if not texts:
            return np.zeros((0, int(session.get_outputs()[0].shape[1] or 0)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out: np.ndarray | None = None
        wants_types = any(i.name == "token_type_ids" for i in session.get_inputs())
        with self._lock:  # one forward pass at a time: onnxruntime already uses every core
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                encodings = tokenizer.encode_batch([texts[i] for i in rows])
                ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
                feeds = {"input_ids": ids,
                         "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64)}
                if wants_types:
                    feeds["token_type_ids"] = np.zeros_like(ids)
                vectors = session.run(None, feeds)[0]
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[rows] = vectors
        assert out is not None
        return normalise(out)
