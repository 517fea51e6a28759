"""What a sentence-transformers folder says about turning token vectors into one embedding.

A plain Hugging Face folder (no `modules.json`) gets mean pooling, L2 normalization and cosine similarity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from neurank.errors import ModelError

Pooling = Literal["mean", "cls", "max"]

_SPACE_TYPES = {"cosine": "cosinesimil", "dot": "innerproduct", "euclidean": "l2", "manhattan": "l1"}
_POOLING_KEYS: dict[str, Pooling] = {
    "pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
}
_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True, slots=True)
class EmbeddingConfig:
    pooling: Pooling
    normalize: bool
    dimension: int
    query_prompt: str
    document_prompt: str
    space_type: str
    """The OpenSearch `knn_vector` space type matching the model's similarity function."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def read_embedding_config(path: Path) -> EmbeddingConfig:
    """Read `modules.json`, the pooling module's config and `config_sentence_transformers.json`."""
    hidden = int(_read_json(path / "config.json").get("hidden_size", 0))
    pooling: Pooling = "mean"
    normalize = True
    modules_file = path / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = {module["type"].rsplit(".", 1)[-1]: module.get("path", "") for module in modules}
        unsupported = sorted(set(kinds) - _MODULES)
        if unsupported:
            raise ModelError(f"{path}: sentence-transformers modules {unsupported} are not supported "
                             f"(supported: {sorted(_MODULES)})")
        normalize = "Normalize" in kinds
        if "Pooling" in kinds:
            pooling, hidden = _read_pooling(path / kinds["Pooling"] / "config.json", hidden)
    st_file = path / "config_sentence_transformers.json"
    settings = _read_json(st_file) if st_file.is_file() else {}
    prompts = settings.get("prompts") or {}
    similarity = settings.get("similarity_fn_name") or "cosine"
    if similarity not in _SPACE_TYPES:
        raise ModelError(f"{st_file}: similarity_fn_name {similarity!r} has no OpenSearch space type "
                         f"(known: {sorted(_SPACE_TYPES)})")
    return EmbeddingConfig(
        pooling=pooling,
        normalize=normalize,
        dimension=hidden,
        query_prompt=prompts.get("query", ""),
        document_prompt=prompts.get("document", prompts.get("passage", "")),
        space_type=_SPACE_TYPES[similarity],
    )


def _read_pooling(config_file: Path, hidden: int) -> tuple[Pooling, int]:
    config = _read_json(config_file)
    modes = [mode for key, mode in _POOLING_KEYS.items() if config.get(key)]
    others = [key for key, value in config.items()
              if key.startswith("pooling_mode") and value and key not in _POOLING_KEYS]
    if len(modes) != 1 or others:
        raise ModelError(f"{config_file}: exactly one of {sorted(_POOLING_KEYS)} must be set "
                         f"(found {modes + others})")
    return modes[0], int(config.get("word_embedding_dimension", hidden))
