"""Dynamic int8 quantization: int8 weights, activations quantized per batch at run time (no calibration)."""

from __future__ import annotations

import logging
from pathlib import Path


class _DropPreprocessHint(logging.Filter):
    """onnxruntime logs a pre-processing hint on the root logger at every call; it does not apply here
    (symbolic shape inference fails on dynamo graphs, and parity is checked afterwards)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(source: Path, target: Path, *, per_channel: bool) -> None:
    """Write `target`, the int8 version of the fp32 graph `source`: QInt8 weights for MatMul and Gemm."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _DropPreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.removeFilter(hint)
