"""What a model folder holds (masked LM, encoder, classifier, pairwise classifier, late interaction) and whether it
can serve a kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from neurank.errors import ModelError
from neurank.onnx_models.duo_folder import DUO_FILE, is_duo, read_duo
from neurank.onnx_models.late_folder import is_late_interaction, read_late_interaction
from neurank.onnx_models.registry import ModelRef

Kind = Literal["sparse", "dense", "cross", "colbert", "duo"]


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / 'config.json'}: {exc}") from exc


def model_kind(path: Path) -> Kind:
    """What a folder holds: a masked LM is sparse, a classifier a cross-encoder (a pairwise model with `duo.json`),
    a token projection ColBERT."""
    config = read_config(path)
    if is_late_interaction(path, config):
        return "colbert"
    architectures = config.get("architectures") or []
    if any(name.endswith("ForMaskedLM") for name in architectures):
        return "sparse"
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "duo" if is_duo(path) else "cross"
    return "dense"


_WANTED = {"sparse": "a masked language model (*ForMaskedLM)",
           "cross": "a sequence classifier (*ForSequenceClassification) scoring (query, passage) pairs",
           "duo": f"a pairwise model (a *ForSequenceClassification with a {DUO_FILE})"}


def check_kind(ref: ModelRef, kind: Kind) -> None:
    """Refuse a folder that cannot serve `kind`, naming what it is instead."""
    config = read_config(ref.path)
    if kind == "colbert":
        read_late_interaction(ref.path)
        return
    found = model_kind(ref.path)
    if kind in ("sparse", "cross", "duo") and found != kind:
        raise ModelError(f"{ref.requested} is not {_WANTED[kind]}; its architectures are "
                         f"{config.get('architectures')}{' and it has a duo.json' if found == 'duo' else ''}")
    if kind in ("cross", "duo"):
        from transformers import AutoConfig

        labels = AutoConfig.from_pretrained(str(ref.path)).num_labels
        if labels != 1:
            what = "pairwise model" if kind == "duo" else "cross-encoder"
            raise ModelError(f"{ref.requested} has num_labels={labels}; a {what} needs exactly one logit")
    if kind == "duo":
        read_duo(ref.path)
