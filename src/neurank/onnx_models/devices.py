"""Where a model runs: a torch device, or ONNX Runtime's execution providers, from one name (`cpu`, `cuda`,
`cuda:N`, or `auto` for the first CUDA GPU when there is one). A device this process cannot use is refused when
the model loads, naming the setting and what is missing, never by a silent fall back to the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neurank.config import DEVICE, DEVICE_NAMES
from neurank.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

CUDA_PROVIDER = "CUDAExecutionProvider"
DEVICE_SETTING = "NEURANK_DEVICE"
"""How errors name the encoders' device."""


def check_device_name(name: str, what: str) -> str:
    """`name` when it names a device kind neurank runs on; `what` names the setting in the error."""
    if not DEVICE.fullmatch(name):
        raise ConfigError(f"unknown {what} {name!r}; use {DEVICE_NAMES}")
    return name


def torch_device(name: str, what: str) -> torch.device:
    """The torch device `name` names; `auto` is the first CUDA GPU when torch sees one, else the CPU."""
    import torch

    check_device_name(name, what)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(f"{what} {name!r} asked for, but torch sees no CUDA GPU here (torch {torch.__version__}, "
                          f"{build}); use cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what} {name!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    return device


def onnx_providers(name: str, what: str) -> list[Any]:
    """ONNX Runtime's providers for `name`: the CPU's, or CUDA's (onnxruntime-gpu) with the CPU's for the nodes
    CUDA lacks; `auto` takes CUDA only where this onnxruntime has it."""
    import onnxruntime as ort

    check_device_name(name, what)
    available = ort.get_available_providers()
    if name == "cpu" or (name == "auto" and CUDA_PROVIDER not in available):
        return ["CPUExecutionProvider"]
    if CUDA_PROVIDER not in available:
        raise ModelError(f"{what} {name!r} with the onnx runtime needs ONNX Runtime's CUDA execution provider "
                         f"(pip install onnxruntime-gpu in place of onnxruntime); this onnxruntime "
                         f"{ort.__version__} has {', '.join(available)}; or run on cpu")
    return [(CUDA_PROVIDER, {"device_id": int(name.partition(":")[2] or 0)}), "CPUExecutionProvider"]


def check_session_device(session: Any, providers: list[Any], path: str) -> None:
    """ONNX Runtime falls back to the CPU when CUDA's libraries fail to load: refuse that instead."""
    wanted = {provider if isinstance(provider, str) else provider[0] for provider in providers}
    if CUDA_PROVIDER in wanted and CUDA_PROVIDER not in session.get_providers():
        raise ModelError(f"onnxruntime could not run {path} on CUDA (its CUDA or cuDNN libraries did not load: see "
                         f"onnxruntime's log above); it would have run on the CPU instead")
