"""onnx_models."""
