"""Typed errors. Each subclass says what the caller does next; each message says what, where and how to fix.

    NeurankError
    ├── InputError            fix the input (file, line, field are named)
    ├── ConfigError           fix a setting or a flag
    ├── MissingExtraError     install an optional extra
    ├── ModelError            a model folder is missing, unreadable or not of the expected kind
    │   ├── ExportMissingError   run `neurank models export` first
    │   └── Int8Error            no int8 graph (parity or quantization failed): use the fp32 one
    ├── StoreError            the store refused an operation (final)
    │   ├── IndexNotFoundError
    │   └── StoreUnavailableError   transient: retry later
    └── PlanError             a retrieval plan is invalid
"""

from __future__ import annotations

import re


class NeurankError(Exception):
    """Root of every error neurank raises on purpose."""


class InputError(NeurankError):
    """Bad input data. `source` is `file:line` when known, `field` the offending field."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        where = ", ".join(part for part in (source, f"field {field!r}" if field else None) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class ConfigError(NeurankError):
    """A setting or flag has a value neurank cannot use."""


class MissingExtraError(NeurankError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed; install it with: pip install 'neurank[{extra}]'")
        self.module = module
        self.extra = extra


class ModelError(NeurankError):
    """A model cannot be found or loaded."""


class Int8Error(ModelError):
    """No int8 graph could be installed; the fp32 export is fine."""


class Int8ParityError(Int8Error):
    """The int8 graph strays too far from PyTorch; the fp32 export is fine and was kept."""


class Int8QuantizationError(Int8Error):
    """onnxruntime failed to quantize the graph (some onnx / onnxruntime versions cannot handle it)."""


class ExportMissingError(ModelError):
    """The ONNX runtime was asked for a model that has not been exported yet."""

    def __init__(self, model: str, expected: str) -> None:
        super().__init__(
            f"no ONNX export of {model} at {expected}; run: neurank models export {model}"
            " (add --int8 for the quantized model)"
        )


class StoreError(NeurankError):
    """The store refused an operation; retrying will not help."""


class IndexNotFoundError(StoreError):
    def __init__(self, index: str, store: str) -> None:
        super().__init__(f"index {index!r} does not exist in {store}; create it with `neurank ingest`")
        self.index = index


class StoreUnavailableError(StoreError):
    """The store could not be reached or answered 5xx/429: transient, retry with backoff."""


class PlanError(NeurankError):
    """A retrieval plan breaks one of OpenSearch's rules or neurank's."""


_SECRET_QUERY_KEYS = r"(?:token|access_token|api_key|apikey|key|password|passwd|pwd|secret|signature|sig|auth)"
_USERINFO = re.compile(r"(?P<head>(?:\b[A-Za-z][A-Za-z0-9+.-]*://)?[^\s/@:'\"()\[\]<>]+):[^\s/@'\"<>]+@")
_QUERY_SECRET = re.compile(rf"(?P<head>[?&;]{_SECRET_QUERY_KEYS}=)[^&#\s'\"<>]+", re.IGNORECASE)
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with URL passwords and secret query values replaced by `***`, so any message is safe to show.

    Covers `scheme://user:pass@host`, a scheme-less `user:pass@host` and `?token=…`-style parameters, in
    neurank's own messages as in text a server echoes back.
    """
    text = _USERINFO.sub(rf"\g<head>:{REDACTED}@", text)
    return _QUERY_SECRET.sub(rf"\g<head>{REDACTED}", text)
