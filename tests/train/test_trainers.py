"""The trainers on a SciFact slice with tiny models: data, loss going down, checkpoints, outputs that load."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neurank.cli import app
from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.eval.datasets import load_qrels
from neurank.onnx_models import CrossEncoder, DenseEncoder, SparseEncoder
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.plan import RetrievalPlan
from neurank.query.rerank import CALIBRATION_FILE, Reranker, load_reranker
from neurank.train.bi_encoder import true_negatives
from neurank.train.calibration import WEIGHTS
from neurank.train.config import TrainConfig
from neurank.train.cross_encoder import CrossEncoderOptions, CrossEncoderTrainee, train_cross_encoder
from neurank.train.data import Group, TrainingData, batch_at, carve_dev, load_training_data
from neurank.train.dense import DenseOptions, DenseTrainee, train_dense
from neurank.train.first_stage import first_stage_runs, indexed
from neurank.train.loop import BEST, LAST, LoopConfig, fit
from neurank.train.models import device_of, training_device
from neurank.train.recipe import CHECKPOINTS, REPORT_FILE, Trainee
from neurank.train.sparse import SparseOptions, SparseTrainee, train_sparse


def smoke_config(base: Path, **overrides: object) -> TrainConfig:
    """A few steps at 64 tokens: enough to exercise every part of a trainer in seconds."""
    values: dict[str, object] = {
        "base": str(base), "steps": 4, "batch_size": 4, "n_negatives": 3, "learning_rate": 1e-3, "max_length": 64,
        "eval_every": 2, "checkpoint_every": 2, "dev_depth": 5, "range_min": 1, "range_max": 20,
        "dev_fraction": 0.25, "eval_split": "test",
    }
    return TrainConfig(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("train-home")
    return Settings(home=home, store=f"local:{home / 'store'}", runtime="torch", int8=False)


@pytest.fixture(scope="module")
def data(tiny_beir: Path, tiny_dense: Path, module_settings: Settings) -> TrainingData:
    return load_training_data(tiny_beir, module_settings, smoke_config(tiny_dense))


@pytest.fixture(scope="module")
def trained_cross_encoder(tiny_beir: Path, tiny_dense: Path, module_settings: Settings,
                          tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "cross"
    train_cross_encoder(tiny_beir, out, module_settings, smoke_config(tiny_dense), progress=False)
    return out


# -- data -------------------------------------------------------------------------------------------------------


def test_mined_negatives_never_include_a_judged_positive(data: TrainingData, tiny_beir: Path) -> None:
    qrels = load_qrels(tiny_beir, "train")
    assert data.examples
    for example in data.examples:
        positives = {doc for doc, label in qrels[example.query_id].items() if label > 0}
        assert set(example.positives) == positives
        assert len(example.negatives) >= 3 and not positives & set(example.negatives)
    for step in range(10):
        for group in data.batch(step, batch_size=4, n_negatives=3):
            assert group.doc_ids[0] in qrels[group.query_id]
            assert not set(group.doc_ids[1:]) & {d for d, label in qrels[group.query_id].items() if label > 0}
            assert group.passages == tuple(data.corpus[doc] for doc in group.doc_ids)
            assert group.judged_positive == {d for d, label in qrels[group.query_id].items() if label > 0}


def test_in_batch_documents_judged_relevant_to_a_query_are_not_its_negatives() -> None:
    groups = [Group("q0", "a", ("d0", "n0"), ("", ""), frozenset({"d0", "d1"})),
              Group("q1", "b", ("d1", "n1"), ("", ""), frozenset({"d1", "n0"}))]
    # Candidates: d0, d1 (positives), then n0, n1 (hard negatives).
    assert true_negatives(groups).tolist() == [[False, False, True, True], [True, False, False, True]]


def test_negatives_skip_the_guarded_top_ranks(data: TrainingData) -> None:
    for example in data.examples:
        top = [doc for doc, _ in data.runs[example.query_id][:1]]
        assert not set(top) & set(example.negatives)


@pytest.mark.parametrize("source", ["dense", "hybrid"])
def test_negatives_can_come_from_dense_and_hybrid_runs(source: str, tiny_beir: Path, tiny_dense: Path,
                                                       module_settings: Settings) -> None:
    settings = module_settings.model_copy(update={"dense_model": str(tiny_dense)})
    queries = {"1": "vitamin D and bone density", "2": "a drug lowers blood pressure"}
    runs = first_stage_runs(tiny_beir, queries, settings, source=source, depth=10)  # type: ignore[arg-type]
    bm25 = first_stage_runs(tiny_beir, queries, settings, source="bm25", depth=10)
    assert set(runs) == set(queries) and all(len(ranking) == 10 for ranking in runs.values())
    assert runs != bm25


def test_dev_is_carved_from_train_and_test_never_trains(data: TrainingData, tiny_beir: Path) -> None:
    train, dev = carve_dev(load_qrels(tiny_beir, "train"), 0.25, seed=42)
    assert (data.train, data.dev) == (train, dev)
    assert len(dev) == 6 and not set(train) & set(dev)
    assert not (set(data.train) | set(data.dev)) & set(load_qrels(tiny_beir, "test"))
    assert carve_dev(train, 0.25, seed=1) != carve_dev(train, 0.25, seed=2)


def test_batches_are_a_function_of_seed_and_step(data: TrainingData) -> None:
    def draw(step: int, seed: int) -> list[tuple[str, ...]]:
        return [g.doc_ids for g in batch_at(data.examples, data.corpus, step=step, batch_size=5, n_negatives=3,
                                            seed=seed)]

    assert draw(7, seed=1) == draw(7, seed=1)
    assert draw(7, seed=1) != draw(7, seed=2)
    epoch = [g.query_id for step in range(len(data.examples)) for g in
             batch_at(data.examples, data.corpus, step=step, batch_size=1, n_negatives=3, seed=1)]
    assert sorted(epoch) == sorted(e.query_id for e in data.examples)


# -- a few steps lower the loss ---------------------------------------------------------------------------------


def make_trainee(kind: str, tiny_dense: Path, tiny_mlm: Path) -> Trainee:
    if kind == "cross":
        return CrossEncoderTrainee(tiny_dense, max_length=64, options=CrossEncoderOptions())
    if kind == "dense":
        return DenseTrainee(tiny_dense, max_length=64, options=DenseOptions(), teacher=None)
    return SparseTrainee(tiny_mlm, max_length=64, options=SparseOptions(), warmup_steps=0)


def held_out_loss(trainee: Trainee, batch: list[Group]) -> float:
    """The batch's loss in eval mode (no dropout), without gradients: comparable before and after training."""
    trainee.module.eval()
    with torch.no_grad():
        return float(trainee.loss(batch, 0))


@pytest.mark.parametrize("kind", ["cross", "dense", "sparse"])
def test_a_few_steps_lower_the_loss(kind: str, data: TrainingData, tiny_dense: Path, tiny_mlm: Path,
                                    tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainee = make_trainee(kind, tiny_dense, tiny_mlm)
    batch = data.batch(0, batch_size=4, n_negatives=2)
    before = held_out_loss(trainee, batch)
    config = LoopConfig(steps=5, learning_rate=1e-3, warmup=0.0, eval_every=100, checkpoint_every=100)
    fit(trainee.module, lambda step: trainee.loss(batch, step), lambda: 0.0, config, tmp_path,
        fingerprint=kind, progress=False)
    assert held_out_loss(trainee, batch) < before


def test_bf16_autocast_lowers_the_loss_and_keeps_fp32_weights(data: TrainingData, tiny_dense: Path,
                                                                tiny_mlm: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainee = make_trainee("dense", tiny_dense, tiny_mlm)
    batch = data.batch(0, batch_size=4, n_negatives=2)
    autocast_seen: list[bool] = []

    def loss_at(step: int) -> torch.Tensor:
        autocast_seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return trainee.loss(batch, step)

    before = held_out_loss(trainee, batch)
    config = LoopConfig(steps=5, learning_rate=1e-3, warmup=0.0, eval_every=100, checkpoint_every=100,
                        precision="bf16")
    fit(trainee.module, loss_at, lambda: 0.0, config, tmp_path, fingerprint="bf16", progress=False)
    assert autocast_seen == [True] * 5 and held_out_loss(trainee, batch) < before
    assert {parameter.dtype for parameter in trainee.module.parameters()} == {torch.float32}


def test_precision_is_fp32_or_bf16() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        LoopConfig(precision="fp16")  # type: ignore[arg-type]


# -- the loop: checkpoints, resume, early stopping --------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_resume_continues_where_the_checkpoint_stopped(data: TrainingData, tiny_dense: Path, tmp_path: Path) -> None:
    config = LoopConfig(steps=4, learning_rate=1e-3, eval_every=2, checkpoint_every=1)

    def run(folder: Path, fail_at: int | None = None) -> tuple[CrossEncoderTrainee, object]:
        torch.manual_seed(0)
        trainee = CrossEncoderTrainee(tiny_dense, max_length=64, options=CrossEncoderOptions())
        steps: list[int] = []

        def loss_at(step: int) -> torch.Tensor:
            if step == fail_at:
                raise Interrupted
            steps.append(step)
            return trainee.loss(data.batch(step, batch_size=2, n_negatives=3), step)

        # A rising dev metric keeps the last weights as the best, so the comparison covers every step.
        report = fit(trainee.module, loss_at, lambda: float(steps[-1]), config, folder, fingerprint="f",
                     progress=False)
        return trainee, report

    straight, _ = run(tmp_path / "straight")
    with pytest.raises(Interrupted):
        run(tmp_path / "resumed", fail_at=3)
    assert (tmp_path / "resumed" / LAST).is_file()
    resumed, report = run(tmp_path / "resumed")
    assert report.resumed_from == 3 and report.steps == 4 and len(report.losses) == 4  # type: ignore[attr-defined]
    for (name, a), (_, b) in zip(straight.module.state_dict().items(), resumed.module.state_dict().items(),
                                 strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    config = LoopConfig(steps=2, eval_every=1, checkpoint_every=1)
    fit(module, lambda step: module(torch.ones(2)).sum(), lambda: 0.0, config, tmp_path, fingerprint="a",
        progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        fit(module, lambda step: module(torch.ones(2)).sum(), lambda: 0.0, config, tmp_path, fingerprint="b",
            progress=False)
    report = fit(module, lambda step: module(torch.ones(2)).sum(), lambda: 0.0, config, tmp_path, fingerprint="b",
                 resume=False, progress=False)
    assert report.resumed_from is None and report.steps == 2


def test_early_stopping_keeps_the_best_weights(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    metrics = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    snapshots: list[torch.Tensor] = []

    def evaluate() -> float:
        snapshots.append(module.weight.detach().clone())
        return next(metrics)

    config = LoopConfig(steps=6, learning_rate=0.1, warmup=0.0, eval_every=1, patience=2)
    report = fit(module, lambda step: module(torch.ones(2)).sum(), evaluate, config, tmp_path, fingerprint="x",
                 progress=False)
    assert report.stopped_early and report.steps == 4
    assert (report.best_step, report.best_metric) == (2, 0.5)
    assert torch.equal(module.weight, snapshots[1])
    assert (tmp_path / BEST).is_file()


def test_dev_figures_beside_the_metric_go_into_the_history_and_the_metric_alone_decides(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    results = iter([(0.5, {"separation_mined": 0.25}), (0.4, {"separation_mined": 0.75})])
    config = LoopConfig(steps=2, learning_rate=0.1, warmup=0.0, eval_every=1, patience=0)
    report = fit(module, lambda step: module(torch.ones(2)).sum(), lambda: next(results), config, tmp_path,
                 fingerprint="d", progress=False)
    assert [(h["step"], h["dev"], h["separation_mined"]) for h in report.history] == [(1, 0.5, 0.25), (2, 0.4, 0.75)]
    assert (report.best_step, report.best_metric) == (1, 0.5)


def test_the_head_trains_at_its_own_rate(tmp_path: Path) -> None:
    module = torch.nn.ModuleDict({"body": torch.nn.Linear(2, 2), "classifier": torch.nn.Linear(2, 1)})
    before = {name: value.clone() for name, value in module.state_dict().items()}
    config = LoopConfig(steps=1, learning_rate=1e-6, head_learning_rate=1e-1, warmup=0.0, weight_decay=0.0)
    fit(module, lambda step: module["classifier"](module["body"](torch.ones(2))).sum(), lambda: 0.0, config,
        tmp_path, fingerprint="h", head=("classifier.",), progress=False)
    moved = {name: float((value - before[name]).abs().max()) for name, value in module.state_dict().items()}
    assert moved["classifier.weight"] > 1e-2 > 1e-5 > moved["body.weight"] > 0


def test_time_limit_stops_after_an_evaluation(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 1)
    config = LoopConfig(steps=100, eval_every=50, time_limit_s=1e-9)
    report = fit(module, lambda step: module(torch.ones(2)).sum(), lambda: 1.0, config, tmp_path,
                 fingerprint="t", progress=False)
    assert report.timed_out and report.steps == 1 and [h["step"] for h in report.history] == [1]


# -- outputs that the encoders load and the rerank stage runs ---------------------------------------------------


def test_cross_encoder_folder_runs_in_the_rerank_stage(trained_cross_encoder: Path, tiny_beir: Path,
                                                       tmp_path: Path) -> None:
    out = trained_cross_encoder
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 64
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "model_qint8.onnx").is_file()
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["loop"]["steps"] == 4 and report["export"]["parity"]["int8_passed"]
    assert set(report["evaluation"]) == {"bm25", "bm25+rerank"}
    assert {"recall@10", "micro_recall@10", "micro_recall@100"} <= set(report["evaluation"]["bm25+rerank"])
    assert [set(entry) for entry in report["loop"]["history"]] == [
        {"step", "loss", "dev", "separation_mined", "separation_random", "recall@10", "micro_recall@10"}] * 2
    diagnostics = report["diagnostics"]
    assert diagnostics["queries"] == 6 and 0 <= diagnostics["separation_mined"] <= 1
    assert diagnostics["silhouette"] is None and "cross-encoder" in diagnostics["not_applicable"]["silhouette"]
    saved = json.loads((out / CALIBRATION_FILE).read_text())
    calibration = saved["first_stages"]["bm25"]
    assert calibration["first_stage_weight"] in WEIGHTS and len(calibration["by_weight"]) == len(WEIGHTS)
    assert report["calibration"] == calibration and saved["normalization"] == calibration["normalization"]
    assert (out / CHECKPOINTS / LAST).is_file()

    # A fresh home has no export cache: the int8 graph must come from the folder itself.
    settings = Settings(home=tmp_path / "elsewhere", runtime="onnx", int8=True)
    onnx = CrossEncoder(str(out), home=settings.home, runtime="onnx", int8=True)
    torch_scores = CrossEncoder(str(out), home=settings.home).predict("a claim", ["one passage", "another"])
    assert np.allclose(onnx.predict("a claim", ["one passage", "another"]), torch_scores, atol=0.05)
    target = indexed(tiny_beir, EncoderBundle(), settings)
    plan = RetrievalPlan.for_mode("bm25+rerank", k=5, depth=20, rerank_depth=20)
    result = target.searcher(Reranker(onnx)).search("vitamin D and bone density", plan)
    assert result.hits and all("rerank" in hit.stages for hit in result.hits)
    assert [hit.score for hit in result.hits] == sorted((hit.score for hit in result.hits), reverse=True)
    mixed = target.searcher(Reranker(onnx, first_stage_weight=0.5))
    hits = mixed.search("vitamin D and bone density", plan).hits
    assert hits and all(hit.stages["rerank"].normalized is not None for hit in hits)
    # A weight for another first stage leaves this BM25 plan to the cross-encoder alone.
    elsewhere = target.searcher(Reranker(onnx, by_first_stage={"hybrid": 0.5}))
    assert all(hit.stages["rerank"].normalized is None for hit in elsewhere.search("vitamin D", plan).hits)


def test_dense_distils_the_cross_encoder_and_loads(trained_cross_encoder: Path, tiny_beir: Path, tiny_dense: Path,
                                                  module_settings: Settings, tmp_path: Path) -> None:
    options = DenseOptions(teacher=str(trained_cross_encoder))
    report = train_dense(tiny_beir, tmp_path / "dense", module_settings, smoke_config(tiny_dense, steps=2),
                         options, progress=False)
    assert set(report.evaluation or {}) == {"dense"}
    assert report.diagnostics is not None and report.diagnostics.silhouette is not None
    assert -1 <= report.diagnostics.silhouette <= 1 and "silhouette" in report.loop.history[-1]
    encoder = DenseEncoder(str(tmp_path / "dense"), home=tmp_path / "elsewhere", runtime="onnx", int8=True)
    vectors = encoder.encode_queries(["does vitamin D help?"])
    assert vectors.shape == (1, 32) and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-3)
    assert (tmp_path / "dense" / "1_Pooling" / "config.json").is_file()


def test_distillation_adds_a_term_only_with_a_teacher(data: TrainingData, tiny_dense: Path) -> None:
    batch = data.batch(0, batch_size=3, n_negatives=2)
    teacher_calls: list[int] = []

    def teacher(query: str, passages: list[str]) -> np.ndarray:
        teacher_calls.append(len(passages))
        return np.arange(len(passages), dtype=np.float32)

    torch.manual_seed(0)
    plain = DenseTrainee(tiny_dense, max_length=64, options=DenseOptions(), teacher=None)
    torch.manual_seed(0)
    taught = DenseTrainee(tiny_dense, max_length=64, options=DenseOptions(), teacher=teacher)
    for trainee in (plain, taught):
        trainee.module.eval()
    with torch.no_grad():
        assert float(taught.loss(batch, 0)) > float(plain.loss(batch, 0))
        taught.loss(batch, 1)
    assert teacher_calls == [3, 3, 3]


def test_sparse_folder_loads_in_the_sparse_encoder(tiny_beir: Path, tiny_mlm: Path, module_settings: Settings,
                                                   tmp_path: Path) -> None:
    # A random masked LM activates the whole vocabulary, so indexing its output for a final evaluation
    # would only measure the store; the folder and its export are what this test checks.
    report = train_sparse(tiny_beir, tmp_path / "sparse", module_settings,
                          smoke_config(tiny_mlm, steps=2, eval_split=None), progress=False)
    assert report.evaluation is None and report.loop.steps == 2
    weights = SparseEncoder(str(tmp_path / "sparse"), home=tmp_path / "elsewhere", runtime="onnx",
                            int8=True).encode_documents(["vitamin D deficiency"])
    assert weights[0] and all(value > 0 for value in weights[0].values())


def test_flops_term_grows_with_its_warm_up(data: TrainingData, tiny_mlm: Path) -> None:
    batch = data.batch(0, batch_size=2, n_negatives=1)
    trainee = SparseTrainee(tiny_mlm, max_length=32, options=SparseOptions(lambda_query=1.0, lambda_document=1.0),
                            warmup_steps=10)
    trainee.module.eval()
    with torch.no_grad():
        losses = [float(trainee.loss(batch, step)) for step in (0, 5, 10)]
    assert losses[0] < losses[1] < losses[2]


def test_cli_trains_with_json_report(tiny_beir: Path, tiny_dense: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_HOME", str(tmp_path / "home"))
    out = tmp_path / "cli-cross"
    args = ["train", "cross-encoder", "--dataset", str(tiny_beir), "--base", str(tiny_dense), "--out", str(out),
            "--steps", "2", "--batch-size", "2", "--negatives", "2", "--max-length", "32", "--eval-every", "2",
            "--dev-depth", "3", "--eval-split", "none", "--loss", "ranknet", "--range-min", "1", "--range-max", "4",
            "--device", "cpu", "--precision", "fp32", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["loop"]["steps"] == 2 and report["evaluation"] is None
    assert (report["recipe"]["config"]["device"], report["recipe"]["config"]["precision"]) == ("cpu", "fp32")
    assert (report["recipe"]["config"]["range_min"], report["recipe"]["config"]["range_max"]) == (1, 4)
    assert report["recipe"]["options"]["loss"] == "ranknet"
    assert json.loads((out / "training.json").read_text())["recipe"] == report["recipe"]
    assert (out / "onnx" / "model_qint8.onnx").is_file()


def test_config_rejects_bad_values(tiny_dense: Path) -> None:
    with pytest.raises(ConfigError):
        smoke_config(tiny_dense, negatives_from="splade")
    with pytest.raises(ConfigError):
        smoke_config(tiny_dense, steps=0)
    with pytest.raises(ConfigError, match="range_min < range_max"):
        smoke_config(tiny_dense, range_min=50, range_max=50)
    with pytest.raises(ConfigError):
        CrossEncoderOptions(loss="listnet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown training device 'gpu0'"):
        smoke_config(tiny_dense, device="gpu0")
    with pytest.raises(ConfigError, match="unknown training device 'meta'"):
        smoke_config(tiny_dense, device="meta")
    assert replace(smoke_config(tiny_dense), eval_split=None).eval_split is None


def test_auto_device_is_the_gpu_torch_sees_or_the_cpu(tmp_path: Path) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert training_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            smoke_config(tmp_path, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_on_the_gpu_saves_weights_that_score_like_on_the_cpu(precision: str, tmp_path: Path) -> None:
    """The loop, the loss and scoring run where the module lives; the saved folder reloads on the CPU.

    Self-contained (a word-level vocabulary and a random 2-layer BERT) so that it runs on any GPU machine.
    """
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = "the a cell cells gene protein virus vaccine cancer risk diet fat fiber heart blood"
    base = tmp_path / "base"
    base.mkdir()
    (base / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words.split()]))
    BertTokenizerFast(vocab_file=str(base / "vocab.txt")).save_pretrained(base)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(words.split()) + 5, num_labels=1, hidden_size=32,
                                             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
                                  ).save_pretrained(base)
    batch = [Group(f"q{i}", query, (f"p{i}", f"n{i}"), (positive, negative))
             for i, (query, positive, negative) in enumerate([("cancer risk", "fat diet cancer risk", "the virus"),
                                                               ("vaccine virus", "the vaccine virus", "heart blood")])]
    trainee = CrossEncoderTrainee(base, max_length=16, options=CrossEncoderOptions())
    trainee.module.to(training_device("cuda"))
    before = held_out_loss(trainee, batch)
    config = LoopConfig(steps=20, learning_rate=1e-2, warmup=0.0, eval_every=10, checkpoint_every=10,
                        precision=precision)  # type: ignore[arg-type]
    report = fit(trainee.module, lambda step: trainee.loss(batch, step), lambda: 0.0, config, tmp_path / "ckpt",
                 fingerprint="gpu", progress=False)
    assert report.steps == 20 and held_out_loss(trainee, batch) < before
    assert device_of(trainee.module).type == "cuda"
    on_gpu = trainee.score(batch[0].query, list(batch[0].passages))
    trainee.save(tmp_path / "model")
    reloaded = CrossEncoderTrainee(tmp_path / "model", max_length=16, options=CrossEncoderOptions())
    np.testing.assert_allclose(reloaded.score(batch[0].query, list(batch[0].passages)), on_gpu, atol=1e-4)


@pytest.mark.slow
def test_the_bundled_base_learns_on_the_slice(data: TrainingData, tmp_path: Path) -> None:
    """MiniLM-L6 with a fresh head: a few steps at 64 tokens lower the loss of the batch they train on."""
    from neurank.onnx_models import resolve_model

    torch.manual_seed(0)
    trainee = CrossEncoderTrainee(resolve_model("minilm-l6", tmp_path).path, max_length=64,
                                  options=CrossEncoderOptions())
    batch = data.batch(0, batch_size=4, n_negatives=3)
    config = LoopConfig(steps=6, learning_rate=1e-4, warmup=0.0, eval_every=100, checkpoint_every=100)
    report = fit(trainee.module, lambda step: trainee.loss(batch, step), lambda: 0.0, config, tmp_path,
                 fingerprint="minilm", progress=False)
    assert report.losses[-1] < report.losses[0]


def test_cli_calibrates_a_trained_reranker_per_first_stage(trained_cross_encoder: Path, tiny_beir: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_HOME", str(tmp_path / "home"))
    model = tmp_path / "model"
    shutil.copytree(trained_cross_encoder, model)
    trained = json.loads((model / CALIBRATION_FILE).read_text())["first_stages"]["bm25"]
    args = ["train", "calibrate", "--rerank-model", str(model), "--dataset", str(tiny_beir), "--split", "test",
            "--first-stages", "dense", "--runtime", "torch", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    [chosen] = json.loads(result.stdout)
    assert chosen["first_stage"] == "dense" and chosen["queries"] == len(load_qrels(tiny_beir, "test"))
    assert chosen["chosen_on"].startswith(f"{tiny_beir.name} test")
    assert chosen["by_weight"][f"{chosen['first_stage_weight']:.1f}"] == max(chosen["by_weight"].values())
    # The weight chosen in training for BM25 stays beside the new one, and each plan gets its own.
    assert json.loads((model / CALIBRATION_FILE).read_text())["first_stages"] == {"bm25": trained, "dense": chosen}
    reranker = load_reranker(Settings(home=tmp_path / "home", runtime="torch"), str(model))
    assert reranker is not None and reranker.by_first_stage == {"bm25": trained["first_stage_weight"],
                                                                "dense": chosen["first_stage_weight"]}


def test_calibrating_something_that_is_not_a_model_folder_is_refused(tiny_beir: Path, tmp_path: Path) -> None:
    from neurank.train.calibration import calibrate_model

    settings = Settings(home=tmp_path / "home")
    with pytest.raises(ConfigError, match="not a model folder"):
        calibrate_model(tmp_path, tiny_beir, load_qrels(tiny_beir, "test"), settings,
                        target=indexed(tiny_beir, EncoderBundle(), settings), split="test")


def test_a_quantizer_that_fails_leaves_the_fp32_export_and_the_run_finishes(
        tiny_beir: Path, tiny_dense: Path, module_settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Some onnx / onnxruntime versions fail inside quantize_dynamic's shape inference: the trained model stays."""
    import onnxruntime.quantization

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[ShapeInferenceError] Inferred shape and existing shape differ in dimension 0")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", broken)
    out = tmp_path / "dense-unquantized"
    messages: list[str] = []
    report = train_dense(tiny_beir, out, module_settings, smoke_config(tiny_dense, steps=2), progress=False,
                         say=messages.append)
    assert report.export["onnx_int8"] is None and set(report.evaluation or {}) == {"dense"}
    assert (out / "onnx" / "model.onnx").is_file() and (out / REPORT_FILE).is_file()
    assert any("could not quantize" in message and "ShapeInferenceError" in message for message in messages)
    assert sum("exporting the dense graph" in message for message in messages) == 1  # the fp32 graph is reused


def test_an_int8_graph_that_fails_parity_leaves_the_fp32_export_and_the_run_finishes(
        tiny_beir: Path, tiny_dense: Path, module_settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from neurank.onnx_models.parity import ParityReport

    monkeypatch.setattr(ParityReport, "int8_passed", property(lambda self: None if self.int8 is None else False))
    out = tmp_path / "dense-fp32"
    report = train_dense(tiny_beir, out, module_settings, smoke_config(tiny_dense, steps=2), progress=False)
    assert report.export["onnx_int8"] is None and set(report.evaluation or {}) == {"dense"}
    assert (out / "onnx" / "model.onnx").is_file() and not (out / "onnx" / "model_qint8.onnx").exists()
