"""The encoders on the bundled weights with the torch runtime: ranking sanity, rank_features rules,
pruning, truncation counts, batching, exports made on first use, and the errors a caller can hit."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from neurank.errors import ConfigError, ModelError
from neurank.onnx_models import CrossEncoder, DenseEncoder, SparseEncoder, feature_name, resolve_model
from neurank.onnx_models.loading import torch_module

QUERY = "how do vaccines train the immune system"
RELEVANT = "Vaccines expose the immune system to an antigen so that it builds antibodies and memory cells."
IRRELEVANT = "The recipe needs two cups of flour, one egg and a pinch of salt, baked for twenty minutes."
PASSAGES = [RELEVANT, IRRELEVANT, "Dr. Smith measured 3.5 mg/kg of vitamin D.", "Antibodies", "Heart rate."]
LONG = "The committee reviewed the annual budget in great detail. " * 80
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}


def sparse_dot(query: dict[str, float], document: dict[str, float]) -> float:
    return sum(weight * document.get(token, 0.0) for token, weight in query.items())


def own_features(model: str, home: Path, text: str) -> set[str]:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model, home).path)
    return {feature_name(token) for token in tokenizer.tokenize(text)}


@pytest.fixture(scope="module")
def splade(tmp_path_factory: pytest.TempPathFactory) -> SparseEncoder:
    return SparseEncoder("splade-tiny", home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> DenseEncoder:
    return DenseEncoder("minilm-l6", home=tmp_path_factory.mktemp("home"))


def test_feature_names_escape_dots_and_percent_reversibly() -> None:
    assert feature_name("u.s") == "u%2Es"
    assert feature_name("%2E") == "%252E"
    assert feature_name(".") != feature_name("%2E")
    assert feature_name("##ing") == "##ing"


def test_splade_ranks_the_relevant_passage_first(splade: SparseEncoder) -> None:
    query = splade.encode_queries([QUERY])[0]
    relevant, irrelevant = splade.encode_documents([RELEVANT, IRRELEVANT])
    assert sparse_dot(query, relevant) > 2 * sparse_dot(query, irrelevant)


def test_sparse_weights_are_what_rank_features_accepts(splade: SparseEncoder) -> None:
    for weights in splade.encode_documents(PASSAGES):
        assert weights
        assert not SPECIAL & weights.keys()
        assert all("." not in token for token in weights)
        values = np.array(list(weights.values()), dtype=np.float64)
        assert (values >= FLOAT32_TINY).all()
        assert (values.astype(np.float32) == values).all(), "weights must be exact float32 values"
        assert list(values) == sorted(values, reverse=True)


def test_splade_expands_and_deepct_keeps_the_texts_own_tokens(splade: SparseEncoder, tmp_path: Path) -> None:
    deepct = SparseEncoder("splade-tiny", home=tmp_path, mode="deepct")
    own = own_features("splade-tiny", tmp_path, RELEVANT)
    expanded = splade.encode_documents([RELEVANT])[0]
    restricted = deepct.encode_documents([RELEVANT])[0]
    assert restricted.keys() <= own
    assert expanded.keys() - own, "SPLADE should add expansion terms"
    assert all(restricted[token] == pytest.approx(expanded[token]) for token in restricted)
    assert deepct.fingerprint != splade.fingerprint


def test_top_k_and_threshold_prune(splade: SparseEncoder, tmp_path: Path) -> None:
    full = splade.encode_documents([RELEVANT])[0]
    top = SparseEncoder("splade-tiny", home=tmp_path, top_k=5).encode_documents([RELEVANT])[0]
    assert list(top) == list(full)[:5]
    threshold = sorted(full.values())[len(full) // 2]
    kept = SparseEncoder("splade-tiny", home=tmp_path, threshold=threshold).encode_documents([RELEVANT])[0]
    assert kept == {token: weight for token, weight in full.items() if weight > threshold}


def test_splade_pinned_output(splade: SparseEncoder) -> None:
    weights = splade.encode_documents(["The cat sat on the mat."])[0]
    assert list(weights)[:3] == ["mat", "cat", "sat"]
    assert [weights[token] for token in ("mat", "cat", "sat")] == pytest.approx([2.3748, 2.2987, 1.9568],
                                                                                 abs=1e-3)


def test_truncation_is_counted_not_hidden(tmp_path: Path) -> None:
    encoder = SparseEncoder("splade-tiny", home=tmp_path, max_length=64)
    encoder.encode_documents([LONG, RELEVANT, IRRELEVANT])
    assert (encoder.stats.texts, encoder.stats.truncated) == (3, 1)
    encoder.encode_queries([QUERY])
    assert (encoder.stats.texts, encoder.stats.truncated) == (4, 1)


@pytest.mark.slow
def test_token_budget_batches_keep_input_order(splade: SparseEncoder, minilm: DenseEncoder,
                                               tmp_path: Path) -> None:
    texts = [LONG, *PASSAGES, QUERY]
    small_sparse = SparseEncoder("splade-tiny", home=tmp_path, batch_tokens=40)
    for batched, alone in zip(small_sparse.encode_documents(texts), splade.encode_documents(texts), strict=True):
        assert list(batched)[:10] == list(alone)[:10]
    small_dense = DenseEncoder("minilm-l6", home=tmp_path, batch_tokens=40)
    np.testing.assert_allclose(small_dense.encode_documents(texts), minilm.encode_documents(texts), atol=1e-5)


def test_dense_ranks_the_relevant_passage_first(minilm: DenseEncoder) -> None:
    query = minilm.encode_queries([QUERY])
    documents = minilm.encode_documents([RELEVANT, IRRELEVANT])
    assert query.shape == (1, 384) and documents.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    scores = documents @ query[0]
    assert scores[0] > scores[1] + 0.3
    assert scores[0] == pytest.approx(0.7802, abs=1e-3), "pinned: plain transformers + mean pooling agree"


def test_dense_reads_the_sentence_transformers_folder(minilm: DenseEncoder) -> None:
    assert minilm.dimension == 384
    assert minilm.space_type == "cosinesimil"
    assert minilm.config.pooling == "mean" and minilm.config.normalize
    assert minilm.encode_documents([]).shape == (0, 384)


def test_construction_does_no_io_and_bad_settings_fail_early(tmp_path: Path) -> None:
    lazy = SparseEncoder("no-such-model-anywhere", home=tmp_path)
    assert lazy.stats.texts == 0
    with pytest.raises(ConfigError, match="torch, onnx"):
        DenseEncoder("minilm-l6", home=tmp_path, runtime="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="splade, deepct"):
        SparseEncoder("splade-tiny", home=tmp_path, mode="bm25")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="top_k"):
        SparseEncoder("splade-tiny", home=tmp_path, top_k=0)


def test_a_missing_export_is_made_on_first_use_and_said(tiny_cross: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "fresh-home"
    torch_scores = CrossEncoder(str(tiny_cross), home=home).predict(QUERY, PASSAGES)
    with caplog.at_level(logging.INFO, logger="neurank"):
        onnx_scores = CrossEncoder(str(tiny_cross), home=home, runtime="onnx", int8=False).predict(QUERY, PASSAGES)
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-4)
    said = [record.getMessage() for record in caplog.records]
    assert any("exporting it once" in message for message in said)
    assert any("checking fp32 parity" in message for message in said)
    assert list((home / "exports").glob("*/model.onnx"))


def open_cross_encoder(folder: str, home: str) -> list[str]:
    """In a fresh process: open the ONNX cross-encoder and return what the export logger said."""
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("neurank")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    CrossEncoder(folder, home=Path(home), runtime="onnx", int8=False).warm_up()
    return said


@pytest.mark.integration
def test_processes_missing_the_same_export_make_it_once(tiny_cross: Path, tmp_path: Path) -> None:
    home = tmp_path / "shared-home"
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        said = list(pool.map(open_cross_encoder, [str(tiny_cross)] * 2, [str(home)] * 2))
    exported = [messages for messages in said if any("exporting the cross graph" in m for m in messages)]
    assert len(exported) == 1, said
    assert len(list((home / "exports").glob("*/model.onnx"))) == 1


def test_sparse_and_cross_refuse_models_of_another_kind(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="masked language model"):
        SparseEncoder("minilm-l6", home=tmp_path).warm_up()
    with pytest.raises(ModelError, match="sequence classifier"):
        CrossEncoder("minilm-l6", home=tmp_path).warm_up()


def test_cross_encoder_needs_exactly_one_logit(make_classifier: Callable[..., Path], tmp_path: Path) -> None:
    folder = make_classifier(tmp_path / "two-labels", tmp_path, num_labels=2)
    with pytest.raises(ModelError, match="num_labels=2"):
        CrossEncoder(str(folder), home=tmp_path).warm_up()


def test_cross_encoder_predicts_one_logit_per_passage_in_order(tiny_cross: Path, tmp_path: Path) -> None:
    encoder = CrossEncoder(str(tiny_cross), home=tmp_path, batch_tokens=32)
    scores = encoder.predict(QUERY, PASSAGES)
    assert scores.shape == (len(PASSAGES),) and scores.dtype == np.float32
    alone = np.array([encoder.predict(QUERY, [passage])[0] for passage in PASSAGES])
    np.testing.assert_allclose(scores, alone, atol=1e-5)
    assert encoder.predict(QUERY, []).shape == (0,)


def test_loading_weights_prints_nothing(tiny_cross: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    torch_module(resolve_model(str(tiny_cross), tmp_path), "cross")
    printed = capfd.readouterr()
    assert printed.err == "" and printed.out == ""


def test_damaged_weights_are_a_model_error_naming_the_folder(tmp_path: Path) -> None:
    """A truncated safetensors file stops the run with a ModelError, not the reader's own exception."""
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(resolve_model("minilm-l6", tmp_path / "home").path, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    encoder = DenseEncoder(str(folder), home=tmp_path / "home", runtime="torch", int8=False, max_length=64,
                           batch_tokens=512, threads=1)
    with pytest.raises(ModelError, match=f"cannot load {folder}"):
        encoder.warm_up()
