"""The late-interaction encoder on a tiny random BERT: ColBERT's input conventions checked against a hand-run
forward pass, the three folder layouts encoding alike, truncation counts, the bundle, ONNX parity by MaxSim.

The model is randomly initialised: these tests check code paths and conventions, never retrieval quality.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.onnx_models.conftest import TOKENIZER_FILES

from neurank.config import load_settings
from neurank.errors import ConfigError, ModelError
from neurank.index_spec import COLBERT_ROLE
from neurank.onnx_models import (
    LateInteractionEncoder,
    export_model,
    model_fingerprint,
    read_late_interaction,
    resolve_model,
    save_late_interaction,
)
from neurank.onnx_models.bundle import EncoderBundle, ensure_exports
from neurank.onnx_models.parity import Comparison, ParityReport
from neurank.onnx_models.registry import PARITY_FILE, find_export
from neurank.stores.scoring import maxsim

DIM = 16
QUERY = "how do vaccines train the immune system?"
DOCUMENTS = [
    "Vaccines expose the immune system to an antigen, so that it builds antibodies.",
    "Heart rate.",
    "The recipe needs two cups of flour; one egg, and a pinch of salt!",
]
LONG = "The committee reviewed the annual budget in great detail. " * 40


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, export_home: Path) -> tuple[Path, torch.Tensor]:
    """A tiny random BertModel folder with MiniLM's tokenizer, and a random (DIM, hidden) projection."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).eval().save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(resolve_model("minilm-l6", export_home).path / name, folder / name)
    return folder, torch.randn(DIM, 32)


@pytest.fixture(scope="module")
def neurank_folder(weights: tuple[Path, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `neurank train colbert` writes: the BERT folder plus the PyLate files."""
    bert, projection = weights
    folder = tmp_path_factory.mktemp("layouts") / "neurank"
    shutil.copytree(bert, folder)
    save_late_interaction(folder, projection.numpy(), query_length=32, document_length=180)
    return folder


@pytest.fixture(scope="module")
def pylate_folder(weights: tuple[Path, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PyLate folder as PyLate writes it (answerai-colbert-small-v1's files), with other lengths."""
    from safetensors.torch import save_file

    bert, projection = weights
    folder = tmp_path_factory.mktemp("layouts") / "pylate"
    shutil.copytree(bert, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]), encoding="utf-8")
    (folder / "1_Dense").mkdir()
    (folder / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 32, "out_features": DIM, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}), encoding="utf-8")
    save_file({"linear.weight": projection.contiguous()}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"similarity_fn_name": "MaxSim", "query_prefix": "[unused0]", "document_prefix": "[unused1]",
         "query_length": 24, "document_length": 64, "attend_to_expansion_tokens": False}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def stanford_folder(weights: tuple[Path, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stanford ColBERT `HF_ColBERT` checkpoint: `bert.*` and `linear.weight` in one state dict."""
    from safetensors.torch import load_file, save_file

    bert, projection = weights
    folder = tmp_path_factory.mktemp("layouts") / "stanford"
    folder.mkdir()
    for name in TOKENIZER_FILES:
        shutil.copy(bert / name, folder / name)
    config = json.loads((bert / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["HF_ColBERT"]}), encoding="utf-8")
    state = {f"bert.{key}": value for key, value in load_file(str(bert / "model.safetensors")).items()}
    save_file({**state, "linear.weight": projection.contiguous()}, str(folder / "model.safetensors"))
    (folder / "artifact.metadata").write_text(json.dumps({"query_maxlen": 32, "doc_maxlen": 180, "dim": DIM}),
                                              encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def encoder(neurank_folder: Path, export_home: Path) -> LateInteractionEncoder:
    return LateInteractionEncoder(str(neurank_folder), home=export_home)


def by_hand(folder: Path, projection: torch.Tensor, ids: list[int], attention: list[int]) -> np.ndarray:
    """BertModel → projection → L2 normalize, on ids built by the test itself."""
    from transformers import BertModel

    model = BertModel.from_pretrained(folder).eval()
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])).last_hidden_state[0]
    return torch.nn.functional.normalize(hidden @ projection.T, dim=-1).numpy()


def test_queries_get_the_marker_after_cls_and_mask_padding_that_is_scored(
        encoder: LateInteractionEncoder, weights: tuple[Path, torch.Tensor]) -> None:
    matrix = encoder.encode_queries([QUERY])[0]
    tokens = encoder.query_tokens(QUERY)
    assert matrix.shape == (32, DIM) and matrix.dtype == np.float32 and len(tokens) == 32
    assert tokens[:3] == ["[CLS]", "[unused0]", "how"]
    real = tokens.index("[SEP]") + 1
    assert set(tokens[real:]) == {"[MASK]"}
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    tokenizer = encoder._model().tokenizer
    ids = tokenizer.convert_tokens_to_ids(tokens)
    expected = by_hand(weights[0], weights[1], ids, [1] * real + [0] * (32 - real))
    np.testing.assert_allclose(matrix, expected, atol=1e-5)
    document = encoder.encode_documents([DOCUMENTS[0]])[0]
    assert maxsim(matrix, [document])[0] != pytest.approx(maxsim(matrix[:real], [document])[0])


def test_documents_get_their_marker_and_drop_punctuation(encoder: LateInteractionEncoder,
                                                         weights: tuple[Path, torch.Tensor]) -> None:
    text = DOCUMENTS[2]
    matrix = encoder.encode_documents([text])[0]
    tokens = encoder.document_tokens(text)
    assert matrix.shape == (len(tokens), DIM)
    assert tokens[:3] == ["[CLS]", "[unused1]", "the"] and tokens[-1] == "[SEP]"
    assert not {";", ",", "!"} & set(tokens)
    tokenizer = encoder._model().tokenizer
    ids = tokenizer(text)["input_ids"]
    full = by_hand(weights[0], weights[1], [ids[0], tokenizer.convert_tokens_to_ids("[unused1]"), *ids[1:]],
                   [1] * (len(ids) + 1))
    marked = ["[CLS]", "[unused1]", *tokenizer.convert_ids_to_tokens(ids[1:])]
    np.testing.assert_allclose(matrix, full[[i for i, token in enumerate(marked) if token not in ";,!"]], atol=1e-5)


def test_documents_encode_alike_alone_and_in_a_padded_batch(encoder: LateInteractionEncoder) -> None:
    together = encoder.encode_documents(DOCUMENTS)
    for text, matrix in zip(DOCUMENTS, together, strict=True):
        np.testing.assert_allclose(matrix, encoder.encode_documents([text])[0], atol=1e-5)
    assert [len(m) for m in together] == [len(encoder.document_tokens(text)) for text in DOCUMENTS]
    assert encoder.encode_documents([]) == [] and encoder.encode_queries([]) == []


def test_long_documents_are_cut_at_document_length_and_counted(neurank_folder: Path, export_home: Path) -> None:
    encoder = LateInteractionEncoder(str(neurank_folder), home=export_home, document_length=48)
    long, short = encoder.encode_documents([LONG, DOCUMENTS[1]])
    assert len(encoder.document_tokens(LONG)) == len(long) <= 48
    assert encoder.stats.truncated == 1 and encoder.stats.texts == 2 and len(short) > 0


def test_the_three_layouts_encode_identically(neurank_folder: Path, pylate_folder: Path, stanford_folder: Path,
                                              export_home: Path) -> None:
    outputs = []
    for folder in (neurank_folder, pylate_folder, stanford_folder):
        encoder = LateInteractionEncoder(str(folder), home=export_home, query_length=32, document_length=180)
        assert encoder.dim == DIM
        outputs.append((encoder.encode_queries([QUERY])[0], encoder.encode_documents(DOCUMENTS)))
    for queries, documents in outputs[1:]:
        np.testing.assert_allclose(queries, outputs[0][0], atol=1e-5)
        for matrix, expected in zip(documents, outputs[0][1], strict=True):
            np.testing.assert_allclose(matrix, expected, atol=1e-5)


def test_the_folder_gives_the_lengths_unless_they_are_set(pylate_folder: Path, stanford_folder: Path,
                                                          export_home: Path) -> None:
    pylate = LateInteractionEncoder(str(pylate_folder), home=export_home)
    assert (pylate.query_length, pylate.document_length) == (24, 64)
    assert pylate.encode_queries([QUERY])[0].shape == (24, DIM)
    stanford = LateInteractionEncoder(str(stanford_folder), home=export_home)
    assert (stanford.query_length, stanford.document_length) == (32, 180)
    assert LateInteractionEncoder(str(pylate_folder), home=export_home, query_length=32).fingerprint != \
        pylate.fingerprint


def test_a_folder_without_a_projection_is_a_model_error(weights: tuple[Path, torch.Tensor],
                                                        export_home: Path) -> None:
    encoder = LateInteractionEncoder(str(weights[0]), home=export_home)
    with pytest.raises(ModelError, match="no late-interaction model"):
        encoder.encode_queries([QUERY])


def test_a_projection_with_a_bias_is_refused(pylate_folder: Path, tmp_path: Path, export_home: Path) -> None:
    folder = tmp_path / "biased"
    shutil.copytree(pylate_folder, folder)
    config = folder / "1_Dense" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text(encoding="utf-8")), "bias": True}), encoding="utf-8")
    with pytest.raises(ModelError, match=r"1_Dense/config.json.*without bias"):
        LateInteractionEncoder(str(folder), home=export_home).warm_up()


def test_the_bundle_fills_token_vectors_and_the_index_spec(neurank_folder: Path, export_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from neurank.documents import Document

    monkeypatch.setenv("NEURANK_COLBERT_MODEL", str(neurank_folder))
    settings = load_settings(home=export_home, runtime="torch", sparse_model="none", dense_model="none",
                             colbert_document_length=64)
    bundle = EncoderBundle.from_settings(settings)
    encoded = bundle.encode([Document(id="a", text=DOCUMENTS[0]), Document(id="b", text=LONG)])
    assert encoded[0].token_vectors is not None and encoded[0].token_vectors.shape[1] == DIM
    assert encoded[1].token_vectors is not None and len(encoded[1].token_vectors) <= 64
    assert bundle.truncated == 1
    assert set(bundle.models()) == {COLBERT_ROLE} and encoded[0].models == bundle.models()
    assert bundle.index_spec(settings).colbert_dimension == DIM
    monkeypatch.setenv("NEURANK_COLBERT_MODEL", "none")
    off = EncoderBundle.from_settings(load_settings(home=export_home, sparse_model="none", dense_model="none"))
    assert off.colbert is None and off.index_spec(settings).colbert_dimension is None


def test_the_onnx_runtime_exports_the_configured_colbert_model_up_front(neurank_folder: Path,
                                                                        export_home: Path) -> None:
    settings = load_settings(home=export_home, runtime="onnx", int8=False, sparse_model="none", dense_model="none",
                             colbert_model=str(neurank_folder))
    ensure_exports([settings])
    assert find_export(resolve_model(str(neurank_folder), export_home), export_home, int8=False).is_file()


def test_onnx_export_is_checked_by_maxsim_and_runs_like_torch(neurank_folder: Path, export_home: Path) -> None:
    report = export_model(str(neurank_folder), home=export_home, int8=False)
    assert report.kind == "colbert" and report.parity.fp32_passed
    assert report.parity.fp32.same_order is True
    assert report.parity.fp32.maxsim_max_abs_diff is not None and report.parity.fp32.maxsim_max_abs_diff < 1e-3
    record = json.loads((report.directory / PARITY_FILE).read_text(encoding="utf-8"))
    assert "MaxSim order" in record["int8_bar"]
    torch_encoder = LateInteractionEncoder(str(neurank_folder), home=export_home)
    onnx_encoder = LateInteractionEncoder(str(neurank_folder), home=export_home, runtime="onnx")
    np.testing.assert_allclose(onnx_encoder.encode_queries([QUERY])[0], torch_encoder.encode_queries([QUERY])[0],
                               atol=1e-4)
    for got, expected in zip(onnx_encoder.encode_documents(DOCUMENTS), torch_encoder.encode_documents(DOCUMENTS),
                             strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_int8_passes_only_when_it_keeps_the_maxsim_order() -> None:
    exact = Comparison(max_abs_diff=0.0, min_cosine=1.0, maxsim_max_abs_diff=0.0, same_order=True)
    report = ParityReport(texts=7, max_length=180, fp32=exact,
                          int8=Comparison(max_abs_diff=0.05, min_cosine=0.999, maxsim_max_abs_diff=0.4,
                                          same_order=False))
    assert report.int8_passed is False
    assert replace(report, int8=replace(report.int8, same_order=True)).int8_passed is True
    assert replace(report, fp32=replace(exact, same_order=False)).fp32_passed is False
    assert ParityReport.from_dict(report.to_dict()) == report


def test_the_int8_export_is_installed_with_its_order_check(neurank_folder: Path, export_home: Path) -> None:
    report = export_model(str(neurank_folder), home=export_home, int8=True)
    assert report.parity.int8 is not None and report.parity.int8.same_order is True
    assert report.parity.int8_passed and report.onnx_int8 is not None and report.onnx_int8.is_file()
    int8 = LateInteractionEncoder(str(neurank_folder), home=export_home, runtime="onnx", int8=True)
    reference = LateInteractionEncoder(str(neurank_folder), home=export_home)
    query = int8.encode_queries([QUERY])[0]
    expected = reference.encode_queries([QUERY])[0]
    order = np.argsort(-maxsim(query, int8.encode_documents(DOCUMENTS)))
    assert np.array_equal(order, np.argsort(-maxsim(expected, reference.encode_documents(DOCUMENTS))))


def test_lengths_too_short_to_hold_a_token_are_refused_when_built(neurank_folder: Path, export_home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="query_length must be at least 4"):
        LateInteractionEncoder(str(neurank_folder), home=export_home, query_length=3)
    monkeypatch.setenv("NEURANK_COLBERT_DOCUMENT_LENGTH", "2")
    with pytest.raises(ConfigError, match="NEURANK_COLBERT_DOCUMENT_LENGTH"):
        load_settings()


def test_a_new_projection_is_a_new_model_fingerprint(neurank_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "retrained"
    shutil.copytree(neurank_folder, folder)
    before = model_fingerprint(folder)
    projection = read_late_interaction(folder).projection
    save_late_interaction(folder, projection * 2, query_length=32, document_length=180)
    assert model_fingerprint(folder) != before
