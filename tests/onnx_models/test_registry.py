"""Model resolution and fingerprints: bundled wheels, folders, hub ids, and what changes a fingerprint."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from neurank.errors import ModelError
from neurank.onnx_models import BUNDLED, model_fingerprint, resolve_model


@pytest.mark.parametrize("name", ["splade-tiny", "minilm-l6"])
def test_bundled_models_resolve_to_folders_in_site_packages(name: str, tmp_path: Path) -> None:
    ref = resolve_model(name, tmp_path)
    assert ref.name == name
    assert (ref.path / "config.json").is_file()
    assert "site-packages" in ref.path.parts
    assert len(ref.fingerprint) == 64


def test_a_folder_path_is_the_same_model_as_its_bundled_name(tmp_path: Path) -> None:
    bundled = resolve_model("minilm-l6", tmp_path)
    by_path = resolve_model(str(bundled.path), tmp_path)
    assert by_path.path == bundled.path
    assert by_path.fingerprint == bundled.fingerprint


def test_fingerprint_is_cached_per_file_version(tmp_path: Path) -> None:
    path = resolve_model("minilm-l6", tmp_path).path
    model_fingerprint(path)
    started = time.perf_counter()
    model_fingerprint(path)
    assert time.perf_counter() - started < 0.05


def test_fingerprint_follows_config_tokenizer_and_sentence_transformers_files(tiny_cross: Path,
                                                                              tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_cross, tmp_path / "copy"))
    original = model_fingerprint(folder)
    assert model_fingerprint(folder) == original
    (folder / "README.md").write_text("not part of the model")
    assert model_fingerprint(folder) == original
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                      "type": "sentence_transformers.models.Transformer"}]))
    with_modules = model_fingerprint(folder)
    assert with_modules != original
    vocab = folder / "vocab.txt"
    vocab.write_text(vocab.read_text() + "neurankextra\n")
    assert model_fingerprint(folder) != with_modules


def test_unknown_name_is_a_model_error_listing_the_bundled_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        resolve_model("neurank-tests/no-such-model", tmp_path)
    message = str(caught.value)
    assert "neither locally nor on the Hugging Face hub" in message
    assert all(name in message for name in BUNDLED)


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model(str(tmp_path), tmp_path)


def test_the_bundle_gives_every_encoder_the_configured_thread_count(tmp_path: Path) -> None:
    from neurank.config import Settings
    from neurank.onnx_models.bundle import EncoderBundle

    bundle = EncoderBundle.from_settings(Settings(home=tmp_path, threads=1))
    encoders = [*bundle.sparse_encoders().values(), bundle.dense]
    assert len(encoders) == 3 and all(encoder.threads == 1 for encoder in encoders)
