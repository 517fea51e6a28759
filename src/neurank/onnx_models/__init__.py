"""Encoders (learned sparse, dense, cross, pairwise, late interaction) on PyTorch or ONNX Runtime; export, int8,
parity.

    SparseEncoder("splade-tiny", home=home, runtime="onnx", int8=True).encode_documents(texts)

Models are bundled names (`BUNDLED`), Hugging Face folders or hub ids; `export_model` makes the ONNX
graphs the onnx runtime needs.
"""

from neurank.onnx_models.base import EncoderStats
from neurank.onnx_models.colbert import LateInteractionEncoder
from neurank.onnx_models.cross import CrossEncoder
from neurank.onnx_models.dense import DenseEncoder
from neurank.onnx_models.duo import DuoEncoder
from neurank.onnx_models.export import ExportReport, export_model
from neurank.onnx_models.late_folder import LateInteractionConfig, read_late_interaction, save_late_interaction
from neurank.onnx_models.parity import Comparison, ParityReport
from neurank.onnx_models.registry import BUNDLED, ModelRef, model_fingerprint, resolve_model
from neurank.onnx_models.runtimes import RUNTIMES, Runtime
from neurank.onnx_models.sparse import SparseEncoder, SparseMode, feature_name

__all__ = [
    "BUNDLED",
    "RUNTIMES",
    "Comparison",
    "CrossEncoder",
    "DenseEncoder",
    "DuoEncoder",
    "EncoderStats",
    "ExportReport",
    "LateInteractionConfig",
    "LateInteractionEncoder",
    "ModelRef",
    "ParityReport",
    "Runtime",
    "SparseEncoder",
    "SparseMode",
    "export_model",
    "feature_name",
    "model_fingerprint",
    "read_late_interaction",
    "resolve_model",
    "save_late_interaction",
]
