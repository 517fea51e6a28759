"""Load a model once per process, for one runtime: a tokenizer plus a backend mapping inputs to outputs.

Both runtimes return the pooled output of `graphs.py` as float32 numpy, so the encoders never look at
which runtime they run on. The cache key is the model fingerprint, kind, runtime, int8 and thread count.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from neurank.errors import ConfigError, ModelError
from neurank.onnx_models.registry import ModelRef, find_export
from neurank.onnx_models.st_folder import EmbeddingConfig, read_embedding_config

Kind = Literal["sparse", "dense", "cross"]
Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

Backend = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Padded int64 inputs (input_ids, attention_mask, token_type_ids) → pooled float32 outputs."""


def check_runtime(runtime: str) -> Runtime:
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use one of: {', '.join(RUNTIMES)}")
    return cast(Runtime, runtime)


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / 'config.json'}: {exc}") from exc


def model_kind(path: Path) -> Kind:
    """What a folder holds, from its architectures: a masked LM is sparse, a classifier a cross-encoder."""
    architectures = read_config(path).get("architectures") or []
    if any(name.endswith("ForMaskedLM") for name in architectures):
        return "sparse"
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "cross"
    return "dense"


def check_kind(ref: ModelRef, kind: Kind) -> None:
    """Refuse a folder that cannot serve `kind`, naming what it is instead."""
    config = read_config(ref.path)
    found = model_kind(ref.path)
    if kind in ("sparse", "cross") and found != kind:
        wanted = "a masked language model (*ForMaskedLM)" if kind == "sparse" else \
            "a sequence classifier (*ForSequenceClassification)"
        raise ModelError(f"{ref.requested} is not {wanted}; its architectures are "
                         f"{config.get('architectures')}")
    if kind == "cross":
        labels = config.get("num_labels") or len(config.get("id2label") or {0: None})
        if labels != 1:
            raise ModelError(f"{ref.requested} has num_labels={labels}; a cross-encoder needs exactly one "
                             "logit (a relevance score)")


def load_tokenizer(ref: ModelRef) -> Any:
    return _tokenizer(str(ref.path), ref.fingerprint)


@lru_cache(maxsize=16)
def _tokenizer(path: str, fingerprint: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {path}: {exc}") from exc


def torch_module(ref: ModelRef, kind: Kind) -> Any:
    """The pooled torch graph of `kind` over the folder's weights, fp32, in eval mode."""
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    from neurank.onnx_models.graphs import EmbeddingPooling, Logits, SpladePooling

    auto = {"sparse": AutoModelForMaskedLM, "dense": AutoModel, "cross": AutoModelForSequenceClassification}[kind]
    try:
        model = auto.from_pretrained(str(ref.path), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the weights of {ref.requested} from {ref.path}: {exc}") from exc
    if kind == "sparse":
        module = SpladePooling(model)
    elif kind == "dense":
        config = read_embedding_config(ref.path)
        module = EmbeddingPooling(model, config.pooling, config.normalize)
    else:
        module = Logits(model)
    return module.eval()


def graph_inputs(tokenizer: Any) -> tuple[str, ...]:
    """The inputs a model takes: token_type_ids only where its tokenizer produces them (not XLM-R)."""
    return tuple(name for name in INPUT_NAMES
                 if name != "token_type_ids" or name in tokenizer.model_input_names)


def torch_backend(module: Any, input_names: tuple[str, ...]) -> Backend:
    import torch

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            output = module(*(torch.from_numpy(inputs[name]) for name in input_names))
        return output.float().numpy()

    return run


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An ORT CPU session with full graph optimization and `threads` intra-op threads (all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc


def onnx_backend(session: Any, ref: ModelRef, kind: Kind) -> Backend:
    """Run `session`; per-token outputs (a graph exported elsewhere) are pooled in numpy."""
    names = [node.name for node in session.get_inputs()]
    unknown = sorted(set(names) - set(INPUT_NAMES))
    if unknown:
        raise ModelError(f"{ref.requested}: the ONNX graph wants inputs {unknown}; neurank feeds only "
                         f"{list(INPUT_NAMES)}. Re-export it with: neurank models export {ref.requested}")
    embedding = read_embedding_config(ref.path) if kind == "dense" else None

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        output = session.run(None, {name: inputs[name] for name in names})[0]
        if output.ndim == 3 and kind != "cross":
            output = pool_token_outputs(kind, output, inputs["attention_mask"], embedding)
        return np.asarray(output, dtype=np.float32)

    return run


def pool_token_outputs(kind: Kind, outputs: np.ndarray, attention_mask: np.ndarray,
                       embedding: EmbeddingConfig | None) -> np.ndarray:
    """Pool the per-token outputs (batch, seq, width) of a graph exported elsewhere as `graphs.py` does."""
    mask = attention_mask[:, :, None].astype(outputs.dtype)
    if kind == "sparse":
        return np.log1p(np.maximum((outputs * mask).max(axis=1), 0.0))
    assert embedding is not None
    if embedding.pooling == "cls":
        pooled = outputs[:, 0]
    elif embedding.pooling == "max":
        pooled = (outputs - (1.0 - mask) * 1e9).max(axis=1)
    else:
        pooled = (outputs * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    if embedding.normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    tokenizer: Any
    backend: Backend
    source: str
    """The weights file or ONNX graph actually run."""


_lock = threading.Lock()
_loaded: dict[tuple[str, Kind, Runtime, bool, int | None], LoadedModel] = {}


def load(ref: ModelRef, kind: Kind, runtime: Runtime, *, int8: bool, home: Path,
         threads: int | None = None) -> LoadedModel:
    """The model ready to run, loaded on first request in this process and shared afterwards."""
    int8 = int8 and runtime == "onnx"
    key = (ref.fingerprint, kind, runtime, int8, threads if runtime == "onnx" else None)
    with _lock:
        if key not in _loaded:
            check_kind(ref, kind)
            tokenizer = load_tokenizer(ref)
            if runtime == "torch":
                backend = torch_backend(torch_module(ref, kind), graph_inputs(tokenizer))
                source = str(ref.path)
            else:
                path = find_export(ref, home, int8=int8)
                backend = onnx_backend(onnx_session(path, threads), ref, kind)
                source = str(path)
            _loaded[key] = LoadedModel(tokenizer, backend, source)
        return _loaded[key]
