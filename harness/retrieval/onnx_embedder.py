"""A sentence-transformers model run by onnxruntime from its ONNX export (see :mod:`.onnx_export`).

Queries and corpus chunks go through the same export, so an index and its queries always share a backend. Texts are
tokenised by the model's own ``tokenizer.json`` (the fast tokenizer sentence-transformers uses, with the same
truncation) and each runs through the graph alone, unpadded. Alone, because the int8 graph quantizes its
activations per tensor: in a batch, a text's vector would depend on its batch-mates and on their padding (cosine
to itself alone down to 0.991 on the restoration corpus). Alone, a text gets the same vector whatever it is embedded
with, and on a CPU it is also faster, since no padding is computed. Loading needs neither torch nor transformers once
the export exists.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.retrieval.embedders import normalise
from harness.retrieval.onnx_export import PROBE_FILE, PROBE_MIN_COSINE, PROBE_TEXTS, Export, ensure_export

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
        tokenizer.no_padding()  # every text runs alone (see the module's docstring)
        _check_probe(export, session, tokenizer)
        _SESSIONS[export.path] = (session, tokenizer)
        return session, tokenizer


def _check_probe(export: Export, session: Any, tokenizer: Any) -> None:
    """Refuse an export whose vectors, on this CPU, drift from the torch model's beyond the quality guard."""
    backend = export.settings.get("backend")
    try:
        reference = np.load(export.path / PROBE_FILE)
    except (OSError, ValueError) as exc:
        raise InputError(f"embedder backend {backend!r}: the export at {export.path} has no readable {PROBE_FILE}",
                         hint="delete that directory to rebuild the export, or fall back to `backend: torch`") from exc
    vectors = _run(session, tokenizer, PROBE_TEXTS)
    if vectors.shape != reference.shape:
        raise InputError(f"embedder backend {backend!r}: the export at {export.path} gives {vectors.shape[1]}-d "
                         f"vectors, its probe {reference.shape[1]}-d",
                         hint="delete that directory to rebuild the export, or fall back to `backend: torch`")
    worst = float(np.min(np.sum(vectors * reference, axis=1)))
    if worst < PROBE_MIN_COSINE:
        raise InputError(
            f"embedder backend {backend!r} drifts from the model on this CPU: cosine {worst:.4f} to the torch "
            f"vectors of its probe sentences (at least {PROBE_MIN_COSINE} is needed)",
            hint="use `backend: onnx` (float32, faithful on every CPU) or `backend: torch` in the suite's embedder",
        )


def _run(session: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """Unit vectors of ``texts``, each run through the graph alone (see the module's docstring)."""
    out = np.zeros((len(texts), int(session.get_outputs()[0].shape[1] or 0)), dtype=np.float32)
    wants_types = any(i.name == "token_type_ids" for i in session.get_inputs())
    for row, encoding in enumerate(tokenizer.encode_batch(list(texts)) if texts else []):
        ids = np.asarray([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64)}
        if wants_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out[row] = session.run(None, feeds)[0][0]
    return normalise(out)


class OnnxEmbedder:
    """The model exported to ONNX (``backend="onnx"``) or exported and quantized (``backend="onnx-int8"``).

    Args:
        model: the model's name, as in the suite.
        source: its local weights directory.
        backend: ``onnx`` or ``onnx-int8``.
        batch_size: texts per call for callers that batch (ingest, query prefetch); each still runs alone.
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
        with self._lock:  # one forward pass at a time: onnxruntime already uses every core
            return _run(session, tokenizer, texts)
