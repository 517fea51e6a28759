"""The two runtimes behind one call: padded int64 inputs in, pooled float32 numpy out.

PyTorch runs the pooled modules of `graphs.py`; ONNX Runtime runs their export, or a graph exported
elsewhere whose per-token outputs are pooled here in numpy the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, get_args

import numpy as np

from neurank.config import Runtime
from neurank.errors import ConfigError, ModelError
from neurank.onnx_models.devices import check_session_device
from neurank.onnx_models.kinds import Kind
from neurank.onnx_models.registry import ModelRef
from neurank.onnx_models.st_folder import EmbeddingConfig, read_embedding_config

RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

Backend = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Padded int64 inputs (input_ids, attention_mask, token_type_ids) → pooled float32 outputs."""


def check_runtime(runtime: str) -> Runtime:
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use one of: {', '.join(RUNTIMES)}")
    return runtime


def graph_inputs(tokenizer: Any) -> tuple[str, ...]:
    """The inputs a model takes: token_type_ids only where its tokenizer produces them (not XLM-R)."""
    return tuple(name for name in INPUT_NAMES
                 if name != "token_type_ids" or name in tokenizer.model_input_names)


def torch_backend(module: Any, input_names: tuple[str, ...], target: Any = "cpu") -> Backend:
    """Run `module` on the torch device `target`; its outputs come back as float32 numpy."""
    import torch

    module.to(target)

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            output = module(*(torch.from_numpy(inputs[name]).to(target) for name in input_names))
        return output.float().cpu().numpy()

    return run


def onnx_session(path: os.PathLike[str] | str, threads: int | None = None,
                 providers: list[Any] | None = None) -> Any:
    """An ORT session on `providers` (the CPU's by default; `devices.onnx_providers`) with full graph optimization
    and `threads` intra-op threads (all cores), no spinning."""
    import onnxruntime as ort

    providers = providers or ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Several sessions take turns in one query (sparse, dense, cross-encoder): threads that spin after a
    # run would steal the cores from the next session.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
    check_session_device(session, providers, str(path))
    return session


def onnx_backend(session: Any, ref: ModelRef, kind: Kind) -> Backend:
    """Run `session`; per-token outputs of a sparse or dense graph exported elsewhere are pooled in numpy
    (a late-interaction graph's per-token outputs are its result)."""
    names = [node.name for node in session.get_inputs()]
    unknown = sorted(set(names) - set(INPUT_NAMES))
    if unknown:
        raise ModelError(f"{ref.requested}: the ONNX graph wants inputs {unknown}; neurank feeds only "
                         f"{list(INPUT_NAMES)}. Re-export it with: neurank models export {ref.requested}")
    embedding = read_embedding_config(ref.path) if kind == "dense" else None

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        output = session.run(None, {name: inputs[name] for name in names})[0]
        if output.ndim == 3 and kind in ("sparse", "dense"):
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
