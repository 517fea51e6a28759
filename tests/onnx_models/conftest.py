"""Fixtures: one export home per session (exports take seconds each), and a tiny random cross-encoder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from neurank.onnx_models import ExportReport, export_model, resolve_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def tiny_classifier(folder: Path, home: Path, *, num_labels: int) -> Path:
    """A randomly initialised 2-layer BERT classifier with MiniLM's tokenizer: shape checks only, no quality."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=num_labels)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer_source = resolve_model("minilm-l6", home).path
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_source / name, folder / name)
    return folder


def tiny_late_interaction(folder: Path, home: Path, *, dim: int = 16) -> Path:
    """A randomly initialised 2-layer BERT with a random projection to `dim`, in the layout `neurank train colbert`
    writes, with MiniLM's tokenizer: code paths only, no quality."""
    import torch
    from transformers import BertConfig, BertModel

    from neurank.onnx_models import save_late_interaction

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer_source = resolve_model("minilm-l6", home).path
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_source / name, folder / name)
    save_late_interaction(folder, torch.randn(dim, 32).numpy(), query_length=32, document_length=180)
    return folder


@pytest.fixture(scope="session")
def make_classifier() -> Callable[..., Path]:
    return tiny_classifier


@pytest.fixture(scope="session")
def export_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("neurank-home")


@pytest.fixture(scope="session")
def tiny_cross(tmp_path_factory: pytest.TempPathFactory, export_home: Path) -> Path:
    return tiny_classifier(tmp_path_factory.mktemp("tiny-cross"), export_home, num_labels=1)


@pytest.fixture(scope="session")
def splade_export(export_home: Path) -> ExportReport:
    return export_model("splade-tiny", home=export_home, int8=True)


@pytest.fixture(scope="session")
def minilm_export(export_home: Path) -> ExportReport:
    return export_model("minilm-l6", home=export_home, int8=True)


@pytest.fixture(scope="session")
def cross_export(tiny_cross: Path, export_home: Path) -> ExportReport:
    return export_model(str(tiny_cross), home=export_home, int8=True)
