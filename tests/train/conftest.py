"""Fixtures for the trainer tests: a SciFact slice and tiny randomly initialised BERT folders.

The tiny models keep the real MiniLM tokenizer (so inputs look like production ones) with a 2-layer,
32-wide encoder, which makes a training step, an ONNX export and a final evaluation take seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tests.beir_slice import write_beir_slice

from neurank.onnx_models import resolve_model

TRAIN_QUERIES, TEST_QUERIES, OTHER_DOCS = 24, 6, 120
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a busy machine extra threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory, scifact: Path) -> Path:
    """SciFact: 24 train and 6 test queries, their judged documents and 120 others."""
    return write_beir_slice(scifact, tmp_path_factory.mktemp("beir") / "scifact-tiny", train_queries=TRAIN_QUERIES,
                            test_queries=TEST_QUERIES, other_docs=OTHER_DOCS)


@pytest.fixture(scope="session")
def minilm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_model("minilm-l6", tmp_path_factory.mktemp("home")).path


@pytest.fixture(scope="session")
def tiny_dense(tmp_path_factory: pytest.TempPathFactory, minilm_folder: Path) -> Path:
    """A sentence-transformers folder (mean pooling, normalised) around a tiny random BERT."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("models") / "tiny-dense"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, **TINY)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder).save_pretrained(folder)
    for name in ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        shutil.copy2(minilm_folder / name, folder / name)
    pooling = json.loads((minilm_folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "word_embedding_dimension": TINY["hidden_size"]}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory, minilm_folder: Path) -> Path:
    """A tiny random BERT masked-LM: a SPLADE-shaped base."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    folder = tmp_path_factory.mktemp("models") / "tiny-mlm"
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=30522, **TINY)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_folder).save_pretrained(folder)
    return folder
