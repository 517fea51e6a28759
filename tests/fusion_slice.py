"""Fixtures for learned fusion: a SciFact slice indexed with BM25 and the real bundled MiniLM (PyTorch), and a
LightGBM fusion model trained on it. Test modules import the fixtures they use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.beir_slice import write_beir_slice

from neurank.config import Settings
from neurank.eval.runner import index_dataset
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.target import SearchTarget
from neurank.stores import open_store
from neurank.train.fusion import FusionConfig, FusionReport, train_fusion

TRAIN_QUERIES, TEST_QUERIES, OTHER_DOCS = 60, 10, 300
MODE, DEPTH = "bm25+dense", 30
CONFIG = FusionConfig(mode=MODE, depth=DEPTH, eval_split=None, leaves=(15,), learning_rate=0.1, rounds=300,
                      patience=300, min_data_in_leaf=5, threads=1)
"""Small trees and no early stop before 300 rounds: the dev queries (6, carved from train) still pick the iteration."""


@dataclass(frozen=True, slots=True)
class Slice:
    folder: Path
    settings: Settings
    target: SearchTarget


def slice_settings(root: Path) -> Settings:
    """BM25 + dense MiniLM on PyTorch fp32 (no export), everything under `root`."""
    return Settings(home=root / "home", store=f"local:{root / 'store'}", runtime="torch", int8=False,
                    sparse_model="none", threads=1)


@pytest.fixture(scope="session")
def fusion_slice(tmp_path_factory: pytest.TempPathFactory, scifact: Path) -> Slice:
    """The slice, indexed in a local store as `neurank eval` would index it (index `beir-<folder name>`)."""
    root = tmp_path_factory.mktemp("fusion")
    folder = write_beir_slice(scifact, root / "scifact-slice", train_queries=TRAIN_QUERIES,
                              test_queries=TEST_QUERIES, other_docs=OTHER_DOCS)
    settings = slice_settings(root)
    target = SearchTarget(open_store(settings), f"beir-{folder.name}", EncoderBundle.from_settings(settings))
    index_dataset(folder, target, settings)
    return Slice(folder, settings, target)


@pytest.fixture(scope="session")
def fusion_model(fusion_slice: Slice, tmp_path_factory: pytest.TempPathFactory) -> FusionReport:
    """A learned fusion of bm25+dense trained on the slice (its folder is the report's `out`)."""
    out = tmp_path_factory.mktemp("fusion-model") / "model"
    return train_fusion(fusion_slice.folder, out, fusion_slice.settings, CONFIG, target=fusion_slice.target)
