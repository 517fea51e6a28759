"""Encoders on a device (`NEURANK_DEVICE`): the CPU unchanged, `auto` the CPU where there is no GPU, and a GPU
this process cannot use refused early, naming what is missing. The GPU cases run where torch sees one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from neurank.config import load_settings
from neurank.errors import ConfigError, ModelError
from neurank.onnx_models import DenseEncoder
from neurank.onnx_models.devices import CUDA_PROVIDER

TEXTS = ["how do vaccines train the immune system", "statins lower cholesterol"]
NO_CUDA = not torch.cuda.is_available()
NO_ORT_CUDA = CUDA_PROVIDER not in ort.get_available_providers()


def encoded(home: Path, runtime: str, device: str) -> np.ndarray:
    encoder = DenseEncoder("minilm-l6", home=home, runtime=runtime, int8=False, device=device)  # type: ignore[arg-type]
    return np.asarray(encoder.encode_queries(TEXTS))


def test_an_unknown_device_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_DEVICE", "gpu")
    with pytest.raises(ConfigError, match=r"NEURANK_DEVICE.*unknown device 'gpu'; use auto, cpu, cuda or cuda:N"):
        load_settings()
    with pytest.raises(ConfigError, match="unknown NEURANK_DEVICE 'tpu'"):
        DenseEncoder("minilm-l6", home=tmp_path, device="tpu")


@pytest.mark.skipif(not NO_CUDA, reason="torch sees a CUDA GPU here")
def test_auto_is_the_cpu_without_a_gpu_and_gives_the_cpus_vectors(tmp_path: Path) -> None:
    assert np.array_equal(encoded(tmp_path, "torch", "auto"), encoded(tmp_path, "torch", "cpu"))


@pytest.mark.skipif(not NO_CUDA, reason="torch sees a CUDA GPU here")
def test_cuda_without_a_gpu_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"NEURANK_DEVICE 'cuda' asked for, but torch sees no CUDA GPU here"):
        encoded(tmp_path, "torch", "cuda")


@pytest.mark.skipif(not NO_ORT_CUDA, reason="this onnxruntime has the CUDA execution provider")
def test_cuda_on_the_onnx_runtime_needs_onnxruntime_gpu_and_says_so_before_exporting(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="pip install onnxruntime-gpu"):
        encoded(tmp_path, "onnx", "cuda")
    assert not (tmp_path / "exports").exists()  # refused before a minute of export


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_torch_on_the_gpu_gives_the_cpus_vectors(tmp_path: Path) -> None:
    np.testing.assert_allclose(encoded(tmp_path, "torch", "cuda"), encoded(tmp_path, "torch", "cpu"), atol=1e-4)


@pytest.mark.skipif(NO_ORT_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_onnx_runtime_on_the_gpu_gives_the_cpus_vectors(tmp_path: Path) -> None:
    np.testing.assert_allclose(encoded(tmp_path, "onnx", "cuda"), encoded(tmp_path, "onnx", "cpu"), atol=1e-3)
