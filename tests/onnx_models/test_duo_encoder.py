"""The pairwise model's inputs, its folder kind, and its ONNX export against PyTorch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from neurank.errors import ModelError
from neurank.onnx_models import CrossEncoder, DuoEncoder, export_model, resolve_model
from neurank.onnx_models.batching import tokenize_triples
from neurank.onnx_models.duo import preference_matrix
from neurank.onnx_models.duo_folder import DuoConfig, save_duo
from neurank.onnx_models.kinds import model_kind
from neurank.onnx_models.loading import load_tokenizer

FP32_ATOL = 1e-4
PASSAGES = ["Vaccines train the immune system to recognise an antigen.",
            "The recipe needs two cups of flour.",
            "Antibodies bind to viral proteins and mark infected cells. " * 40]


@pytest.fixture(scope="module")
def tiny_duo(tmp_path_factory: pytest.TempPathFactory, export_home: Path, make_classifier: Callable[..., Path]
             ) -> Path:
    folder = make_classifier(tmp_path_factory.mktemp("tiny-duo"), export_home, num_labels=1)
    save_duo(folder, DuoConfig(query_length=8))
    return folder


def tokens(export_home: Path, ids: list[int]) -> list[str]:
    return list(load_tokenizer(resolve_model("minilm-l6", export_home)).convert_ids_to_tokens(ids))


def test_triples_put_query_then_both_passages_with_their_own_budgets(export_home: Path) -> None:
    tokenizer = load_tokenizer(resolve_model("minilm-l6", export_home))
    short = tokenize_triples(tokenizer, "red blue", ["cat"], ["dog house"], 64, 8)
    assert tokens(export_home, short.input_ids[0]) == ["[CLS]", "red", "blue", "[SEP]", "cat", "[SEP]", "dog",
                                                       "house", "[SEP]"]
    assert short.token_type_ids[0] == [0, 0, 0, 0, 1, 1, 1, 1, 1] and short.truncated == [False]
    # 12 tokens: query cut to 2, 6 left for the passages; the 2-token second passage lends its rest to the first.
    cut = tokenize_triples(tokenizer, "one two three", ["a b c d e"], ["x y"], 12, 2)
    assert tokens(export_home, cut.input_ids[0]) == ["[CLS]", "one", "two", "[SEP]", "a", "b", "c", "d", "[SEP]",
                                                     "x", "y", "[SEP]"]
    assert cut.truncated == [True]
    with pytest.raises(ValueError, match="2 first passages but 1 second"):
        tokenize_triples(tokenizer, "q", ["a", "b"], ["c"], 12, 2)


def test_preference_matrix_places_each_ordered_pair() -> None:
    # ordered_pairs(3) = (0,1), (0,2), (1,0), (1,2), (2,0), (2,1); logit 0 is probability 0.5.
    logits = np.log(np.array([9.0, 1.0, 1 / 9, 3.0, 1.0, 1 / 3]))
    assert preference_matrix(3, logits) == pytest.approx(np.array([[0.5, 0.9, 0.5],
                                                                   [0.1, 0.5, 0.75],
                                                                   [0.5, 0.25, 0.5]]))


def test_a_duo_folder_is_its_own_kind(tiny_duo: Path, tiny_cross: Path, export_home: Path) -> None:
    assert (model_kind(tiny_duo), model_kind(tiny_cross)) == ("duo", "cross")
    with pytest.raises(ModelError, match=r"is not a sequence classifier .* and it has a duo.json"):
        CrossEncoder(str(tiny_duo), home=export_home).predict("q", ["p"])
    with pytest.raises(ModelError, match="is not a pairwise model"):
        DuoEncoder(str(tiny_cross), home=export_home).predict("q", ["a"], ["b"])


def test_a_bad_duo_json_names_the_file(tiny_duo: Path, tmp_path: Path, export_home: Path) -> None:
    import shutil

    broken = shutil.copytree(tiny_duo, tmp_path / "broken")
    (broken / "duo.json").write_text(json.dumps({"query_length": 0}), encoding="utf-8")
    with pytest.raises(ModelError, match=r"duo.json: query_length must be a positive integer, got 0"):
        DuoEncoder(str(broken), home=export_home).predict("q", ["a"], ["b"])


@pytest.mark.slow
def test_duo_export_meets_parity_and_runs_in_both_runtimes(tiny_duo: Path, export_home: Path) -> None:
    report = export_model(str(tiny_duo), home=export_home, int8=True)
    assert report.kind == "duo" and report.parity.fp32_passed and report.parity.int8_passed
    assert report.parity.fp32.max_abs_diff <= FP32_ATOL
    scores = {(runtime, int8): DuoEncoder(str(tiny_duo), home=export_home, runtime=runtime, int8=int8)
              .preferences("how do vaccines work", PASSAGES)
              for runtime, int8 in (("torch", False), ("onnx", False), ("onnx", True))}
    assert all(matrix.shape == (3, 3) and np.allclose(np.diag(matrix), 0.5) for matrix in scores.values())
    np.testing.assert_allclose(scores["onnx", False], scores["torch", False], atol=FP32_ATOL)
    np.testing.assert_allclose(scores["onnx", True], scores["torch", False], atol=0.05)
