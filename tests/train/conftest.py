"""Fixtures for the trainer tests: a SciFact slice and tiny randomly initialised BERT folders.

The tiny models keep the real MiniLM tokenizer (so inputs look like production ones) with a 2-layer,
32-wide encoder, which makes a training step, an ONNX export and a final evaluation take seconds.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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
    folder = tmp_path_factory.mktemp("beir") / "scifact-tiny"
    (folder / "qrels").mkdir(parents=True)
    judged: set[str] = set()
    kept_queries: set[str] = set()
    for split, count in (("train", TRAIN_QUERIES), ("test", TEST_QUERIES)):
        header, *rows = (scifact / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        queries = sorted({row.split("\t")[0] for row in rows})[:count]
        kept = [row for row in rows if row.split("\t")[0] in queries]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
        judged |= {row.split("\t")[1] for row in kept}
        kept_queries |= set(queries)
    lines = (scifact / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    others = set(random.Random(0).sample(range(len(lines)), OTHER_DOCS))
    corpus = [line for i, line in enumerate(lines) if i in others or json.loads(line)["_id"] in judged]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    queries = [line for line in (scifact / "queries.jsonl").read_text(encoding="utf-8").splitlines()
               if json.loads(line)["_id"] in kept_queries]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    return folder


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
