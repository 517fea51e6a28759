"""Dynamic int8 quantization: int8 weights, activations quantized per batch at run time (no calibration)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from neurank.errors import Int8QuantizationError

QUANTIZED_OPS = ("MatMul", "Gemm")


class _DropPreprocessHint(logging.Filter):
    """onnxruntime logs a pre-processing hint on the root logger at every call; it does not apply here
    (symbolic shape inference fails on dynamo graphs, and parity is checked afterwards)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def weight_nodes(source: Path) -> list[str]:
    """The MatMul and Gemm nodes of `source` with a constant operand: those dynamic quantization turns int8."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    constants = {initializer.name for initializer in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type in QUANTIZED_OPS and any(name in constants for name in node.input)]


def quantize_int8(source: Path, target: Path, *, per_channel: bool, keep_fp32: Collection[str] = ()) -> None:
    """Write `target`, the int8 version of the fp32 graph `source`: QInt8 weights for MatMul and Gemm.

    Nodes named in `keep_fp32` stay as they are (the ones whose quantization costs the most accuracy).
    Any failure of onnxruntime's quantizer (its shape inference, say) becomes `Int8QuantizationError`.
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    hint = _DropPreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=list(keep_fp32))
    except Exception as exc:  # onnx and onnxruntime raise their own, unrelated exception types
        raise Int8QuantizationError(f"onnxruntime {onnxruntime.__version__} could not quantize {source}: "
                                    f"{exc.__class__.__name__}: {exc}") from exc
    finally:
        root.removeFilter(hint)
