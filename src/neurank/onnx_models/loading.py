"""Load a model once per process, for one runtime: its tokenizer plus a backend (see `runtimes.py`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from neurank.errors import ExportMissingError, ModelError
from neurank.onnx_models.devices import DEVICE_SETTING, onnx_providers, torch_device
from neurank.onnx_models.kinds import Kind, check_kind
from neurank.onnx_models.late_folder import read_late_interaction
from neurank.onnx_models.registry import ModelRef, find_export
from neurank.onnx_models.runtimes import (
    Backend,
    Runtime,
    graph_inputs,
    onnx_backend,
    onnx_session,
    torch_backend,
)
from neurank.onnx_models.st_folder import read_embedding_config


def load_tokenizer(ref: ModelRef) -> Any:
    return _tokenizer(str(ref.path), ref.fingerprint)


@lru_cache(maxsize=16)
def _tokenizer(path: str, fingerprint: str) -> Any:
    return fresh_tokenizer(Path(path))


def fresh_tokenizer(path: Path) -> Any:
    """A tokenizer of its own (training changes `model_max_length` on the copy it saves); not cached."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {path}: {exc}") from exc


def pretrained(auto: Any, path: Path, **kwargs: Any) -> Any:
    """`auto.from_pretrained(path)` in fp32, with a `ModelError` naming the folder when it fails (a missing or
    unreadable file, a bad config, damaged weights)."""
    import torch
    from safetensors import SafetensorError

    try:
        with quiet_transformers():
            return auto.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelError(f"cannot load {path} as {auto.__name__}: {exc}") from exc


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-load progress bar or load report (e.g. the unused pooler of the e5 folder): they say nothing a
    neurank user can act on. Errors still show; the previous settings come back afterwards."""
    from transformers.utils import logging as transformers_logging

    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def torch_module(ref: ModelRef, kind: Kind) -> Any:
    """The pooled torch graph of `kind` over the folder's weights, fp32, in eval mode."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    from neurank.onnx_models.graphs import EmbeddingPooling, Logits, SpladePooling, TokenVectors

    auto = {"sparse": AutoModelForMaskedLM, "dense": AutoModel, "cross": AutoModelForSequenceClassification,
            "colbert": AutoModel, "duo": AutoModelForSequenceClassification}[kind]
    model = pretrained(auto, ref.path)
    module: SpladePooling | EmbeddingPooling | Logits | TokenVectors
    if kind == "colbert":
        import torch

        module = TokenVectors(model, torch.from_numpy(read_late_interaction(ref.path).projection))
    elif kind == "sparse":
        module = SpladePooling(model)
    elif kind == "dense":
        config = read_embedding_config(ref.path)
        module = EmbeddingPooling(model, config.pooling, config.normalize)
    else:
        module = Logits(model)
    return module.eval()


def onnx_graph(ref: ModelRef, home: Path, *, int8: bool) -> Path:
    """The ONNX graph to run, exported (parity-checked, cached by fingerprint) when there is none yet.

    Progress goes to the `neurank.onnx_models.export` logger: a first export takes a minute or two. Processes
    that miss the same export at once make it once (`export_model` holds a file lock).
    """
    try:
        return find_export(ref, home, int8=int8)
    except ExportMissingError:
        from neurank.onnx_models.export import export_model, logger

        logger.info("no ONNX export of %s yet: exporting it once%s …", ref.requested, " (int8)" if int8 else "")
        export_model(ref.requested, home=home, int8=int8, progress=logger.info)
        return find_export(ref, home, int8=int8)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    tokenizer: Any
    backend: Backend
    source: str
    """The weights file or ONNX graph actually run."""


_lock = threading.Lock()
_loaded: dict[tuple[str, Kind, str, int | None, str], LoadedModel] = {}


def load(ref: ModelRef, kind: Kind, runtime: Runtime, *, int8: bool, home: Path,
         threads: int | None = None, device: str = "cpu") -> LoadedModel:
    """The model ready to run on `device`, loaded on first request in this process and shared afterwards.

    Keyed by fingerprint, kind, the file run (weights folder or ONNX graph) and the device, so two folders
    holding the same weights but different ONNX graphs stay apart. `int8` applies to the onnx runtime only; a
    missing export is made first (see `onnx_graph`).
    """
    # the device first: one this process cannot use is refused before an export or a load takes a minute
    target = torch_device(device, DEVICE_SETTING) if runtime == "torch" else onnx_providers(device, DEVICE_SETTING)
    source = str(onnx_graph(ref, home, int8=int8)) if runtime == "onnx" else str(ref.path)
    key = (ref.fingerprint, kind, source, threads if runtime == "onnx" else None, device)
    with _lock:
        if key not in _loaded:
            check_kind(ref, kind)
            tokenizer = load_tokenizer(ref)
            if isinstance(target, list):
                backend = onnx_backend(onnx_session(Path(source), threads, target), ref, kind)
            else:
                backend = torch_backend(torch_module(ref, kind), graph_inputs(tokenizer), target)
            _loaded[key] = LoadedModel(tokenizer, backend, source)
        return _loaded[key]
