"""The pairwise trainer: RankNet on real MiniLM weights, then a whole run whose folder serves the duo stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neurank.cli import app
from neurank.config import Settings
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.duo import load_duo
from neurank.query.plan import RetrievalPlan
from neurank.train.config import TrainConfig
from neurank.train.data import Group, TrainingData, load_training_data
from neurank.train.duo import DuoOptions, DuoTrainee, train_duo
from neurank.train.first_stage import indexed
from neurank.train.loop import LoopConfig, fit
from neurank.train.recipe import REPORT_FILE


def duo_config(base: Path, **overrides: object) -> TrainConfig:
    """Two steps at 64 tokens, dev on the first stage's top 4: every part of the trainer in seconds."""
    values: dict[str, object] = {
        "base": str(base), "steps": 2, "batch_size": 2, "n_negatives": 2, "learning_rate": 1e-3, "max_length": 64,
        "eval_every": 1, "checkpoint_every": 2, "dev_depth": 4, "dev_queries": 4, "range_min": 1, "range_max": 20,
        "dev_fraction": 0.25, "eval_split": "test",
    }
    return TrainConfig(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("duo-home")
    return Settings(home=home, store=f"local:{home / 'store'}", runtime="torch", int8=False)


@pytest.fixture(scope="module")
def data(tiny_beir: Path, tiny_dense: Path, settings: Settings) -> TrainingData:
    return load_training_data(tiny_beir, settings, duo_config(tiny_dense))


@pytest.fixture(scope="module")
def trained_duo(tiny_beir: Path, tiny_dense: Path, settings: Settings,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "duo"
    train_duo(tiny_beir, out, settings, duo_config(tiny_dense), DuoOptions(query_length=16), progress=False)
    return out


def held_out(trainee: DuoTrainee, batch: list[Group]) -> tuple[float, np.ndarray]:
    """The batch's RankNet loss and each positive's P(positive ≻ negative), in eval mode without gradients."""
    trainee.module.eval()
    with torch.no_grad():
        loss = float(trainee.loss(batch, 0))
        first = trainee.logits([(g.query, [g.passages[0]] * (len(g.passages) - 1), list(g.passages[1:]))
                                for g in batch])
    return loss, torch.sigmoid(first).numpy()


@pytest.mark.slow
def test_ranknet_lowers_the_loss_of_minilm_duo_on_a_slice(data: TrainingData, minilm_folder: Path,
                                                          tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainee = DuoTrainee(minilm_folder, max_length=96, options=DuoOptions(query_length=16))
    batch = data.batch(0, batch_size=2, n_negatives=2)
    before, _ = held_out(trainee, batch)
    config = LoopConfig(steps=6, learning_rate=5e-5, head_learning_rate=2e-3, warmup=0.0, eval_every=6,
                        checkpoint_every=6, patience=0)
    fit(trainee.module, lambda step: trainee.loss(batch, step), lambda: 0.0, config, tmp_path, fingerprint="duo",
        head=trainee.head, progress=False)
    after, preferred = held_out(trainee, batch)
    assert after < before
    assert (preferred > 0.5).mean() >= 0.75  # the positive, shown first, is preferred to most negatives


def test_the_loss_shows_each_pair_in_both_orders(data: TrainingData, tiny_dense: Path) -> None:
    trainee = DuoTrainee(tiny_dense, max_length=64, options=DuoOptions(query_length=16))
    batch = data.batch(0, batch_size=2, n_negatives=3)
    trainee.module.eval()
    with torch.no_grad():
        logits = trainee.logits([(g.query, [g.passages[0]] * 3 + list(g.passages[1:]),
                                  list(g.passages[1:]) + [g.passages[0]] * 3) for g in batch])
        targets = torch.tensor(([1.0] * 3 + [0.0] * 3) * 2)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        assert float(trainee.loss(batch, 0)) == pytest.approx(float(expected), rel=1e-5)


def test_a_trained_duo_folder_serves_the_duo_stage(trained_duo: Path, tiny_beir: Path, tmp_path: Path) -> None:
    out = trained_duo
    assert json.loads((out / "duo.json").read_text()) == {"query_length": 16}
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "model_qint8.onnx").is_file()
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["kind"] == "duo" and report["export"]["kind"] == "duo"
    assert report["export"]["parity"]["fp32_passed"] and report["export"]["parity"]["int8_passed"]
    assert set(report["evaluation"]) == {"bm25", "bm25+duo"}
    assert {"micro_recall@100", "recall@10"} <= set(report["evaluation"]["bm25+duo"])
    dev = report["loop"]["history"][-1]
    assert {"separation_mined", "separation_random", "recall@10", "micro_recall@10"} <= set(dev)
    assert "silhouette" not in dev
    test = report["diagnostics"]
    assert 0.0 <= test["separation_mined"] <= 1.0 and test["silhouette"] is None
    assert "triples" in test["not_applicable"]["silhouette"] and "evaluation" in test["not_applicable"]["recall"]

    # A fresh home has no export cache: the int8 graph must come from the folder itself.
    settings = Settings(home=tmp_path / "elsewhere", runtime="onnx", int8=True)
    duo = load_duo(settings, str(out))
    assert duo is not None
    target = indexed(tiny_beir, EncoderBundle(), settings)
    plan = RetrievalPlan.for_mode("bm25+duo", k=6, depth=20, duo_depth=4)
    bm25 = target.searcher().search("vitamin D and bone density", RetrievalPlan.for_mode("bm25", k=6, depth=20))
    result = target.searcher(duo=duo).search("vitamin D and bone density", plan, explain=True)
    head, tail = result.hits[:4], result.hits[4:]
    assert {hit.id for hit in head} == {hit.id for hit in bm25.hits[:4]}
    assert [hit.id for hit in tail] == [hit.id for hit in bm25.hits[4:]]
    assert all({"bm25", "duo"} <= set(hit.stages) for hit in head) and all("duo" not in hit.stages for hit in tail)
    scores = [hit.stages["duo"].raw for hit in head]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(4 * 3, abs=1e-4)
    # The reordered hits take the scores of the ranks they land on: scores still decrease into the tail.
    assert [hit.score for hit in result.hits] == [hit.score for hit in bm25.hits]
    assert result.explanations is not None
    preferences = result.explanations[0].duo
    assert len(preferences) == 3 and {other for other, _ in preferences} == {hit.id for hit in head[1:]}
    assert "duo" in result.to_dict()["hits"][0]["stages"] and result.to_dict()["hits"][0]["explain"]["duo"]
    assert "duo" in result.timings_ms


def test_without_a_pairwise_model_the_duo_stage_says_it_is_off(tiny_beir: Path, settings: Settings) -> None:
    target = indexed(tiny_beir, EncoderBundle(), settings)
    result = target.searcher().search("vitamin D", RetrievalPlan.for_mode("bm25+duo", k=3))
    assert any("pairwise reranking is off" in note for note in result.notes)
    assert all("duo" not in hit.stages for hit in result.hits)


def test_eval_diagnostics_report_recall_per_mode_and_separation_per_model(
        trained_duo: Path, tiny_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("HOME", tmp_path / "home"), ("SPARSE_MODEL", "none"), ("DENSE_MODEL", "none")):
        monkeypatch.setenv(f"NEURANK_{name}", str(value))
    args = ["eval", "--dataset", str(tiny_beir), "--modes", "bm25,bm25+duo", "--duo-model", str(trained_duo),
            "--diagnostics", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["modes"]) == {"bm25", "bm25+duo"}
    assert {"recall@10", "micro_recall@10", "micro_recall@100"} <= set(report["modes"]["bm25"])
    assert set(report["models"]) == {"bm25", "duo"}
    for found in report["models"].values():
        assert 0.0 <= found["separation_mined"] <= 1.0 and 0.0 <= found["separation_random"] <= 1.0
        assert found["silhouette"] is None and found["not_applicable"]["silhouette"]
    # BM25's own best-ranked unjudged documents are far harder for it than random ones.
    bm25 = report["models"]["bm25"]
    assert bm25["separation_random"] > bm25["separation_mined"]


def test_cli_trains_duo_and_prints_the_diagnostics(tiny_beir: Path, tiny_dense: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_HOME", str(tmp_path / "home"))
    args = ["train", "duo", "--dataset", str(tiny_beir), "--base", str(tiny_dense), "--out", str(tmp_path / "duo"),
            "--steps", "1", "--batch-size", "2", "--negatives", "1", "--max-length", "48", "--eval-every", "1",
            "--dev-depth", "3", "--range-min", "1", "--range-max", "6", "--query-length", "12", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dev diagnostics at step 1: separation_mined" in result.output
    assert "test diagnostics" in result.output and "silhouette n/a" in result.output
    assert "silhouette: a pairwise model scores" in result.output
