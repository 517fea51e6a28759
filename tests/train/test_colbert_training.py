"""The late-interaction trainer on the SciFact slice with a tiny random BERT: MaxSim as the stores compute it,
the loss going down, distillation, a folder in the PyLate layout that the encoder and its ONNX export load,
the final evaluation, and the CLI. Quality is never claimed from these models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neurank.cli import app
from neurank.config import Settings
from neurank.onnx_models import LateInteractionEncoder, read_late_interaction
from neurank.stores.scoring import maxsim
from neurank.train.colbert import ColbertOptions, ColbertTrainee, late_scores, train_colbert
from neurank.train.config import TrainConfig
from neurank.train.data import TrainingData, load_training_data
from neurank.train.evaluation import Scorer
from neurank.train.loop import LoopConfig, fit
from neurank.train.losses import contrastive_loss_from_scores
from neurank.train.recipe import REPORT_FILE

SMOKE = {"steps": 2, "batch_size": 4, "n_negatives": 2, "learning_rate": 1e-3, "max_length": 48, "eval_every": 2,
         "checkpoint_every": 2, "dev_depth": 5, "range_min": 1, "range_max": 20, "dev_fraction": 0.25}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("colbert-home")
    return Settings(home=home, store=f"local:{home / 'store'}", runtime="torch", int8=False)


@pytest.fixture(scope="module")
def data(tiny_beir: Path, tiny_dense: Path, settings: Settings) -> TrainingData:
    return load_training_data(tiny_beir, settings, TrainConfig(base=str(tiny_dense), **SMOKE))  # type: ignore[arg-type]


def trainee(base: Path, teacher: Scorer | None = None) -> ColbertTrainee:
    torch.manual_seed(0)
    return ColbertTrainee(base, max_length=48, options=ColbertOptions(dim=8), teacher=teacher)


def test_late_scores_are_the_stores_maxsim_with_dropped_rows_never_winning() -> None:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((2, 4, 3)).astype(np.float32)
    documents = rng.standard_normal((3, 5, 3)).astype(np.float32)
    kept = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    documents[0, 2] = 100.0  # a dropped row that would win every max
    got = late_scores(torch.from_numpy(queries), torch.from_numpy(documents), torch.from_numpy(kept)).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], maxsim(queries[b], [documents[n][kept[n]] for n in range(3)]), rtol=1e-5)


def test_a_short_run_lowers_the_loss_on_queries_it_never_trained_on(data: TrainingData, tiny_dense: Path,
                                                                     tmp_path: Path) -> None:
    train, held_out = replace(data, examples=data.examples[:16]), replace(data, examples=data.examples[16:])
    model = trainee(tiny_dense)
    unseen = held_out.batch(0, batch_size=len(held_out.examples), n_negatives=2)

    def held_out_loss() -> float:
        model.module.eval()
        with torch.no_grad():
            return float(model.loss(unseen, 0))

    before = held_out_loss()
    config = LoopConfig(steps=12, learning_rate=1e-3, warmup=0.0, eval_every=100, checkpoint_every=100)
    fit(model.module, lambda step: model.loss(train.batch(step, batch_size=4, n_negatives=2), step), lambda: 0.0,
        config, tmp_path, fingerprint="colbert", head=model.head, progress=False)
    assert held_out_loss() < before


def test_a_document_judged_relevant_to_a_query_is_never_its_in_batch_negative(data: TrainingData,
                                                                            tiny_dense: Path) -> None:
    group = data.batch(0, batch_size=1, n_negatives=2)[0]
    twin = replace(group, query_id=f"{group.query_id}-again")  # another query judging the same document relevant
    model = trainee(tiny_dense)
    model.module.eval()
    with torch.no_grad():
        loss = float(model.loss([group, twin], 0))
        queries = model.encode_queries([group.query, twin.query])
        scores = late_scores(queries, *model.encode_documents([group.passages[0], twin.passages[0],
                                                                *group.passages[1:], *twin.passages[1:]]))
    # Each row keeps its own positive and the four negatives, never the twin's copy of its positive.
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[0, 1] = keep[1, 0] = False
    targets = torch.arange(2)
    assert loss == pytest.approx(float(contrastive_loss_from_scores(scores, targets, keep=keep)), rel=1e-5)
    assert loss < float(contrastive_loss_from_scores(scores, targets)) - 0.1


def test_distillation_adds_a_term_only_with_a_teacher(data: TrainingData, tiny_dense: Path) -> None:
    batch = data.batch(0, batch_size=3, n_negatives=2)
    calls: list[int] = []

    def teacher(query: str, passages: list[str]) -> np.ndarray:
        calls.append(len(passages))
        return np.arange(len(passages), dtype=np.float32)[::-1] * 5

    plain, taught = trainee(tiny_dense), trainee(tiny_dense, teacher=teacher)
    for model in (plain, taught):
        model.module.eval()
    with torch.no_grad():
        assert float(taught.loss(batch, 0)) > float(plain.loss(batch, 0))
        taught.loss(batch, 1)
    assert calls == [3, 3, 3]


def test_training_writes_a_pylate_folder_that_loads_exports_and_evaluates(
        tiny_beir: Path, tiny_dense: Path, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "colbert"
    config = TrainConfig(base=str(tiny_dense), eval_split="test", **SMOKE)  # type: ignore[arg-type]
    report = train_colbert(tiny_beir, out, settings, config, ColbertOptions(dim=8, query_length=16), progress=False)
    assert report.kind == "colbert" and report.loop.steps == 2
    assert set(report.evaluation or {}) == {"bm25", "bm25+colbert"}
    late = (report.evaluation or {})["bm25+colbert"]
    assert 0.0 <= late["ndcg@10"] <= 1.0 and late["without_token_vectors"] == 0
    assert (out / "eval" / f"{tiny_beir.name}-test-bm25+colbert.trec").is_file()
    assert json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))["kind"] == "colbert"
    folder = read_late_interaction(out)
    assert folder.layout == "sentence-transformers" and folder.dim == 8
    assert (folder.query_length, folder.document_length, folder.query_marker) == (16, 48, "[unused0]")
    assert (out / "onnx" / "model.onnx").is_file()
    onnx = LateInteractionEncoder(str(out), home=tmp_path / "elsewhere", runtime="onnx")
    in_torch = LateInteractionEncoder(str(out), home=tmp_path / "elsewhere")
    np.testing.assert_allclose(onnx.encode_queries(["vitamin D"])[0], in_torch.encode_queries(["vitamin D"])[0],
                               atol=1e-4)
    continued = ColbertTrainee(out, max_length=48, options=ColbertOptions(), teacher=None)
    np.testing.assert_array_equal(continued.module.linear.weight.detach().numpy(), folder.projection)
    assert continued.head == () and trainee(tiny_dense).head == ("linear.",)


def test_cli_trains_colbert_with_json_report(tiny_beir: Path, tiny_dense: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_HOME", str(tmp_path / "home"))
    out = tmp_path / "cli-colbert"
    args = ["train", "colbert", "--dataset", str(tiny_beir), "--base", str(tiny_dense), "--out", str(out),
            "--steps", "1", "--batch-size", "2", "--negatives", "1", "--max-length", "32", "--eval-every", "1",
            "--dev-depth", "3", "--eval-split", "none", "--range-min", "1", "--range-max", "4", "--dim", "8",
            "--query-length", "12", "--device", "cpu", "--precision", "fp32", "--runtime", "torch", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "colbert" and report["loop"]["steps"] == 1 and report["evaluation"] is None
    assert report["recipe"]["options"]["dim"] == 8 and report["recipe"]["options"]["query_length"] == 12
    assert read_late_interaction(out).query_length == 12
