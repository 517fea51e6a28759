"""Dynamic int8 quantization: int8 weights, activations quantized per batch at run time (no calibration)."""

from __future__ import annotations

from pathlib import Path


def quantize_int8(source: Path, target: Path, *, per_channel: bool) -> None:
    """Write `target`, the int8 version of the fp32 graph `source` (QInt8 weights for MatMul/Gemm)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel,
                     op_types_to_quantize=["MatMul", "Gemm"])
