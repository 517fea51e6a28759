"""The late-interaction (ColBERT) folder layouts neurank reads, and the one it writes.

- **sentence-transformers / PyLate** (what neurank writes too): the BERT folder at the root, `modules.json`
  listing a Transformer (path "") and one `Dense` module whose `model.safetensors` holds `linear.weight`
  (dim, hidden) with no bias and an identity activation; `config_sentence_transformers.json` holds
  `query_prefix`, `document_prefix`, `query_length`, `document_length`, `attend_to_expansion_tokens` and
  `skiplist_words` when the model sets them.
- **Stanford ColBERT** (`HF_ColBERT`): a BERT folder whose state dict also holds `linear.weight`;
  `artifact.metadata`, when present, gives `query_maxlen`, `doc_maxlen` and `attend_to_mask_tokens`.

Missing values take the ColBERTv2 defaults: markers `[unused0]` / `[unused1]`, 32 query and 180 document
tokens, mask tokens not attended to, punctuation skipped on the document side.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neurank.errors import ModelError

Layout = Literal["sentence-transformers", "stanford"]
QUERY_MARKER = "[unused0]"
DOCUMENT_MARKER = "[unused1]"
QUERY_LENGTH = 32
DOCUMENT_LENGTH = 180
DEFAULT_DIM = 128
STANFORD_ARCHITECTURE = "HF_ColBERT"
DENSE_FOLDER = "1_Dense"
ST_CONFIG = "config_sentence_transformers.json"
STANFORD_METADATA = "artifact.metadata"
_IDENTITY = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True, slots=True)
class LateInteractionConfig:
    """What turns a BERT folder's token states into ColBERT token vectors, whatever layout it came in."""

    projection: np.ndarray
    """(dim, hidden) float32: token vector = normalize(projection @ hidden state); no bias."""
    query_marker: str
    document_marker: str
    query_length: int
    document_length: int
    attend_to_expansion: bool
    """Whether query tokens attend to the [MASK] padding (ColBERTv2 and PyLate: no; the mask rows are scored)."""
    skiplist: tuple[str, ...]
    """Words whose tokens a document drops (punctuation by default)."""
    layout: Layout

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])


def is_late_interaction(path: Path, config: dict[str, Any]) -> bool:
    """A Stanford checkpoint (architecture `HF_ColBERT`) or a sentence-transformers folder with a Dense module."""
    if STANFORD_ARCHITECTURE in (config.get("architectures") or []):
        return True
    return _dense_module(path) is not None


def read_late_interaction(path: Path) -> LateInteractionConfig:
    """The projection and the encoding settings of a late-interaction folder; `ModelError` names what is missing."""
    dense = _dense_module(path)
    if dense is not None:
        return _read_sentence_transformers(path, dense)
    state = _state_dict(path, ("linear.weight",))
    if "linear.weight" not in state:
        raise ModelError(f"{path} is no late-interaction model: it has neither a sentence-transformers Dense "
                         "module (modules.json) nor a `linear.weight` projection (Stanford ColBERT)")
    metadata = _read_json(path / STANFORD_METADATA) if (path / STANFORD_METADATA).is_file() else {}
    return LateInteractionConfig(
        projection=state["linear.weight"], query_marker=QUERY_MARKER, document_marker=DOCUMENT_MARKER,
        query_length=int(metadata.get("query_maxlen") or QUERY_LENGTH),
        document_length=int(metadata.get("doc_maxlen") or DOCUMENT_LENGTH),
        attend_to_expansion=bool(metadata.get("attend_to_mask_tokens", False)),
        skiplist=tuple(string.punctuation), layout="stanford",
    )


def save_late_interaction(folder: Path, projection: np.ndarray, *, query_length: int, document_length: int) -> None:
    """Write the sentence-transformers / PyLate files beside a saved BERT folder (the weights are already there)."""
    from safetensors.numpy import save_file

    dim, hidden = projection.shape
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": DENSE_FOLDER, "type": "pylate.models.Dense.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / DENSE_FOLDER).mkdir(exist_ok=True)
    (folder / DENSE_FOLDER / "config.json").write_text(json.dumps(
        {"in_features": int(hidden), "out_features": int(dim), "bias": False,
         "activation_function": _IDENTITY[0]}), encoding="utf-8")
    save_file({"linear.weight": np.ascontiguousarray(projection, dtype=np.float32)},
              str(folder / DENSE_FOLDER / "model.safetensors"))
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": document_length - 1, "do_lower_case": False}), encoding="utf-8")
    (folder / ST_CONFIG).write_text(json.dumps({
        "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "MaxSim",
        "query_prefix": QUERY_MARKER, "document_prefix": DOCUMENT_MARKER, "query_length": query_length,
        "document_length": document_length, "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
    }, indent=2), encoding="utf-8")


def _dense_module(path: Path) -> Path | None:
    """The folder of the one Dense module listed in `modules.json`, or None when there is none."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return None
    modules = _read_json(modules_file)
    dense = [module for module in modules if str(module.get("type", "")).rsplit(".", 1)[-1] == "Dense"]
    if len(dense) > 1:
        raise ModelError(f"{modules_file}: {len(dense)} Dense modules; a late-interaction model has one projection")
    return path / dense[0].get("path", "") if dense else None


def _read_sentence_transformers(path: Path, dense: Path) -> LateInteractionConfig:
    config = _read_json(dense / "config.json")
    if config.get("bias") or config.get("activation_function", _IDENTITY[0]) not in _IDENTITY:
        raise ModelError(f"{dense / 'config.json'}: the projection must be linear without bias (bias false, "
                         f"Identity activation), got bias={config.get('bias')}, "
                         f"activation={config.get('activation_function')}")
    state = _state_dict(dense, ("linear.weight",))
    if "linear.weight" not in state:
        raise ModelError(f"{dense} holds no `linear.weight` (model.safetensors or pytorch_model.bin)")
    settings = _read_json(path / ST_CONFIG) if (path / ST_CONFIG).is_file() else {}
    return LateInteractionConfig(
        projection=state["linear.weight"],
        query_marker=str(settings.get("query_prefix") or QUERY_MARKER).strip(),
        document_marker=str(settings.get("document_prefix") or DOCUMENT_MARKER).strip(),
        query_length=int(settings.get("query_length") or QUERY_LENGTH),
        document_length=int(settings.get("document_length") or DOCUMENT_LENGTH),
        attend_to_expansion=bool(settings.get("attend_to_expansion_tokens", False)),
        skiplist=tuple(settings.get("skiplist_words") or string.punctuation), layout="sentence-transformers",
    )


def _state_dict(folder: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """`keys` (those present) from the folder's safetensors or torch weights, as float32 numpy arrays."""
    for name in _WEIGHT_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(str(file), framework="np") as handle:
                    names = set(handle.keys())
                    return {key: handle.get_tensor(key).astype(np.float32) for key in keys if key in names}
            import torch

            state = torch.load(file, map_location="cpu", weights_only=True)
            return {key: state[key].float().numpy() for key in keys if key in state}
        except Exception as exc:  # safetensors and torch raise their own, unrelated exception types
            raise ModelError(f"cannot read the weights {file}: {exc}") from exc
    return {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
