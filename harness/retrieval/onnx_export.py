"""Export a sentence-transformers model to ONNX once, offline, optimise its graph and (for int8) quantize it.

The export runs on first use and lands in ``<models dir>/<model>-<backend>-<hash>/`` (default ``.harness/models``,
or ``$HARNESS_MODELS_DIR``), written to a temporary directory and renamed into place, so a reader sees a whole
export or none. The hash covers everything that shapes the vectors: the source weights, the recipe below, and the
versions of torch (the exporter), onnx and onnxruntime (the optimiser and quantizer). Change any of them and a new
directory is made; the index key carries the same hash (see :class:`~harness.retrieval.onnx_embedder.OnnxEmbedder`),
so vectors from two exports are never mixed.

The recipe, chosen against the quality guard in ``bench/ingest.py`` (cosine to the torch embeddings: mean >= 0.995,
min >= 0.98 over the corpus chunks; nDCG@10 and recall@10 within 0.01 on the suites):

1. Export with the TorchScript exporter (``torch.onnx.export(dynamo=False)``, opset 17), with eager attention so the
   next step recognises it. Mean pooling and L2 normalisation are part of the graph.
2. Optimise with onnxruntime's transformer optimiser (``model_type="bert"``): fused attention, embedding layer norm,
   skip layer norm and bias-GELU.
3. ``onnx-int8`` only: dynamic quantization, weights QInt8 per output channel, activations UInt8, on ``MatMul`` only,
   and not every one. Left in float: the fused ``Attention`` (the Q, K and V projections), the whole first layer,
   and each layer's feed-forward output projection (``output/dense``), whose input is a GELU output with long-tailed
   outliers. Over the restoration corpus's chunks, each text run alone (cosine to torch, mean and min; chunks/s on
   the 2-core development machine, where the float32 export ran 71):

   ======================================================  ======================  ========
   quantized                                               cosine mean, min        chunks/s
   ======================================================  ======================  ========
   every op (``quantize_dynamic``'s default)               0.925 (batched)         --
   MatMul and Attention, all layers                        0.994, 0.986 (batched)  --
   the same but the feed-forward output projections        0.9975, 0.9919          110
   this recipe: also not Attention, nor the first layer    0.9988, 0.9968          93
   ======================================================  ======================  ========

   The last step gives up a sixth of the speed to halve the distance to torch, so that the guard's 0.01 on nDCG has
   room on suites it was not tuned on.

Beside the graph, the export keeps the torch model's vectors of :data:`PROBE_TEXTS`; every load embeds them again
and refuses an export whose vectors fall below :data:`PROBE_MIN_COSINE` (a CPU whose int8 kernels lose precision,
a damaged file), naming the fallback.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.retrieval.embedders import quiet_transformers, tokenizer_of

MODELS_DIR_ENV = "HARNESS_MODELS_DIR"
DEFAULT_MODELS_DIR = Path(".harness") / "models"
EXPORT_SCHEMA = 2  # bump when the export steps change in a way the recipe does not say (2: the probe)
MARKER = "harness-export.json"
PROBE_FILE = "probe.npy"
# A load is refused when the export's vectors of these texts drift further than this from the torch model's. int8
# kernels differ between CPUs (VNNI or not, AVX2 or AVX-512), so a graph quantized on one machine is checked on
# the machine that runs it; the bar is the quality guard's minimum over the corpus chunks (bench/ingest.py).
PROBE_MIN_COSINE = 0.98
PROBE_TEXTS: tuple[str, ...] = (
    "Does the policy cover tear-out of wet drywall above the flood cut?",
    "IRC R905.2.8.5: drip edge shall be provided at eaves and rake edges of shingle roofs.",
    "Supplement: the adjuster omitted the detach and reset of the gutter guards on the north elevation.",
    "Category 3 water loss in the finished basement; antimicrobial applied, 4 dehumidifiers, 6 air movers.",
    "What is the minimum clearance between a water heater vent connector and combustible materials?",
    "Line item RFG 240S: remove and replace laminated comp shingles, 28.33 squares, 10 % waste included.",
    "ok",
    "Xactimate price list WAMS8X, effective date of loss; overhead and profit at 10 and 10 on a three-trade job. "
    * 8,
)
OPSET = 17
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Recipe:
    """How a backend is made from the torch model; every field goes into the export's hash and the manifest."""

    backend: str
    optimise: str = "onnxruntime.transformers.optimizer, model_type=bert, opt_level=1"
    quantize: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        return asdict(self)


QUANTIZE_INT8: dict[str, Any] = {
    "method": "onnxruntime.quantization.quantize_dynamic",
    "weight_type": "QInt8",
    "activation_type": "QUInt8",
    "per_channel": True,
    "op_types": ["MatMul"],
    "exclude": "the first layer, and each layer's feed-forward output projection (/output/dense/MatMul, not "
               "attention/output)",
}
RECIPES: dict[str, Recipe] = {
    "onnx": Recipe("onnx"),
    "onnx-int8": Recipe("onnx-int8", quantize=QUANTIZE_INT8),
}


@dataclass(frozen=True)
class Export:
    """An export on disk and what made it."""

    path: Path
    model_file: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return str(self.settings["fingerprint"])


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _weights_digest(source: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(source)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _safe_name(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model.split("/")[-1]) or "model"


def ensure_export(model: str, source: Path, backend: str) -> Export:
    """The export of ``model`` (weights under ``source``) for ``backend``, made now if it is not on disk yet.

    Raises:
        InputError: the backend is unknown, or the export could not be made (its packages are missing, or a step
            failed); the hint names the fallback, ``backend: torch``.
    """
    recipe = RECIPES.get(backend)
    if recipe is None:
        raise InputError(f"unknown embedder backend {backend!r}",
                         hint=f"use torch, or one of: {', '.join(sorted(RECIPES))}")
    tools = versions()
    missing = [name for name in ("onnx", "onnxruntime") if tools[name] is None]
    if missing:
        raise InputError(f"embedder backend {backend!r} needs {' and '.join(missing)}, which is not installed",
                         hint="install the locked dev requirements, or fall back to `backend: torch`")
    identity = {"schema": EXPORT_SCHEMA, "model": model, "weights": _weights_digest(source), "opset": OPSET,
                "recipe": recipe.settings(), "versions": tools}
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    target = models_dir() / f"{_safe_name(model)}-{backend}-{fingerprint}"
    with _LOCK:
        marker = target / MARKER
        if marker.is_file() and (target / PROBE_FILE).is_file():
            try:
                settings = json.loads(marker.read_text())
                if settings.get("fingerprint") == fingerprint:
                    return Export(target, target / settings["model_file"], settings)
            except (OSError, ValueError, KeyError):
                pass  # a damaged export is made again below
        settings = {**identity, "fingerprint": fingerprint, "backend": backend, "model_file": "model.onnx",
                    "exporter": f"torch.onnx.export (TorchScript, dynamo=False), opset {OPSET}, eager attention"}
        _build(source, target, recipe, settings)
        return Export(target, target / "model.onnx", settings)


def _build(source: Path, target: Path, recipe: Recipe, settings: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        exported = staging / "exported.onnx"
        config = _export(source, exported)
        optimised = staging / "optimised.onnx"
        _optimise(exported, optimised, config)
        final = staging / "model.onnx"
        if recipe.quantize is not None:
            _quantize(optimised, final)
            optimised.unlink()
        else:
            optimised.rename(final)
        exported.unlink()
        for name in ("tokenizer.json", "sentence_bert_config.json"):
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        settings["max_seq_length"] = config["max_seq_length"]
        np.save(staging / PROBE_FILE, config["probe"])
        (staging / MARKER).write_text(json.dumps(settings, indent=2, sort_keys=True))
        _move_into_place(staging, target)
    except InputError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:  # torch, onnx and onnxruntime raise many kinds; all mean "no export"
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError(f"could not export the embedder to ONNX ({recipe.backend}): {type(exc).__name__}: {exc}",
                         hint="fall back to `backend: torch` in the suite's embedder") from exc


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename a finished export into place. Another process may have made the same export meanwhile (the tests' CLI
    processes, a Ray node's actors): then theirs stands, and ours is dropped."""
    try:
        os.replace(staging, target)
        return
    except OSError:
        if (target / MARKER).is_file() and (target / PROBE_FILE).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return
    shutil.rmtree(target, ignore_errors=True)  # a damaged export, from an interrupted build of an older version
    os.replace(staging, target)


def _export(source: Path, out: Path) -> dict[str, Any]:
    """Export the model with pooling and normalisation in the graph; returns what the optimiser needs to know."""
    import torch
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    model = SentenceTransformer(str(source), device="cpu", model_kwargs={"attn_implementation": "eager"})
    transformer: Any = model[0].auto_model
    transformer.eval()
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers >= 6; older ones had flags
    mean = mode == "mean" if mode is not None else bool(getattr(pooling, "pooling_mode_mean_tokens", False))
    if pooling is None or not mean:
        raise InputError("only mean-pooled sentence-transformers models can be exported to ONNX here",
                         hint="fall back to `backend: torch` for this model")

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = tokenizer_of(model)(["an example sentence", "another, somewhat longer example sentence to export"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = tuple(sample.get(name, torch.zeros_like(sample["input_ids"])) for name in names)
    # The tracer warns about shape checks it folds; the fp32 export matches torch at every batch size and length
    # (cosine 1.0000 in bench/ingest.py), and the warnings would only clutter the CLI's output.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(transformer).eval(), inputs, str(out), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["sentence_embedding"], do_constant_folding=True,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "sentence_embedding": {0: "batch"}})
    probe = model.encode(list(PROBE_TEXTS), normalize_embeddings=True, convert_to_numpy=True, batch_size=1)
    config: Any = transformer.config
    return {"probe": np.asarray(probe, dtype=np.float32),
            "model_type": getattr(config, "model_type", ""), "num_heads": int(config.num_attention_heads),
            "hidden_size": int(config.hidden_size), "max_seq_length": int(model.max_seq_length or 512)}


def _optimise(src: Path, out: Path, config: dict[str, Any]) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    if config["model_type"] != "bert":  # the fusions below match BERT's graph; others run unfused
        shutil.copy2(src, out)
        return
    optimised = optimize_model(str(src), model_type="bert", num_heads=config["num_heads"],
                               hidden_size=config["hidden_size"], opt_level=1, use_gpu=False)
    optimised.save_model_to_file(str(out))


def _quantize(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    excluded = [node.name for node in graph.node if node.op_type == "MatMul" and (
        "/layer.0/" in node.name or ("/output/dense/" in node.name and "attention" not in node.name))]
    # The quantizer logs advice on the root logger (the recipe above already follows it) and installs a handler there,
    # through which every library's debug lines would reach the CLI's output afterwards: both are undone.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(out), op_types_to_quantize=list(QUANTIZE_INT8["op_types"]), per_channel=True,
                         weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         # fused ops (com.microsoft domain) defeat ONNX shape inference; their outputs are float
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
