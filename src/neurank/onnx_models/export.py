"""`neurank models export`: a model folder → pooled ONNX graph (+ int8), checked against PyTorch.

Files land in the export cache, `<home>/exports/<name>-<fingerprint>/`, only once parity holds, so the
onnx runtime never picks up a wrong graph. An encoder that finds no export makes it on first use
(`loading.onnx_graph`), saying so on the `neurank.onnx_models.export` logger; a file lock per export folder
lets one process export while the others wait for it and reuse its files.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from neurank.errors import Int8ParityError, Int8QuantizationError, ModelError
from neurank.onnx_models.kinds import Kind, check_kind, model_kind
from neurank.onnx_models.late_folder import read_late_interaction
from neurank.onnx_models.loading import load_tokenizer, torch_module
from neurank.onnx_models.parity import (
    INT8_MIN_COSINE,
    SAMPLE_TEXTS,
    Comparison,
    LateProbe,
    ParityReport,
    compare,
    parity_batches,
    run_batches,
)
from neurank.onnx_models.quantize import quantize_int8, weight_nodes
from neurank.onnx_models.registry import (
    ONNX_FP32,
    ONNX_INT8,
    PARITY_FILE,
    ModelRef,
    export_dir,
    resolve_model,
)
from neurank.onnx_models.runtimes import Backend, graph_inputs, onnx_backend, onnx_session, torch_backend

Progress = Callable[[str], None]
logger = logging.getLogger(__name__)

_OUTPUT_NAMES: dict[Kind, str] = {"sparse": "sparse_weights", "dense": "sentence_embedding", "cross": "logits",
                                  "colbert": "token_vectors", "duo": "logits"}
_EXTERNAL_DATA_BYTES = 1_500_000_000
"""Above this the graph keeps its weights in a side file (protobuf stops at 2 GB)."""
MAX_FP32_SHARE = 0.25
"""At most this share of the weight nodes stays fp32 to meet the int8 bar; past it int8 would gain little speed."""


@dataclass(frozen=True, slots=True)
class ExportReport:
    model: str
    kind: Kind
    fingerprint: str
    directory: Path
    onnx: Path
    onnx_int8: Path | None
    parity: ParityReport
    reused: bool
    """True when every graph asked for was already in the cache; `parity` is then the stored report."""
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "kind": self.kind, "fingerprint": self.fingerprint,
            "directory": str(self.directory), "onnx": str(self.onnx),
            "onnx_int8": str(self.onnx_int8) if self.onnx_int8 else None,
            "parity": self.parity.to_dict(), "reused": self.reused, "seconds": round(self.seconds, 2),
        }


def export_model(name_or_dir: str, *, home: Path, int8: bool, force: bool = False,
                 progress: Progress | None = None, int8_min_cosine: float = INT8_MIN_COSINE) -> ExportReport:
    """Export (and with `int8`, quantize) a model and check parity, or return the cached export's report.

    int8 is quantized per tensor and per channel; the variant closest to PyTorch is kept, with its costliest
    weight nodes left fp32 when that is what it takes to reach `int8_min_cosine`. Raises `ModelError` when a
    graph fails parity (fp32: max abs diff; int8: min cosine), naming the numbers; such a graph is never
    installed.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    ref = resolve_model(name_or_dir, home)
    kind = model_kind(ref.path)
    check_kind(ref, kind)
    target = export_dir(ref, home)
    cached = None if force else _cached_parity(target, int8)
    if cached is None:
        target.mkdir(parents=True, exist_ok=True)
        with _exclusive(target, say):
            cached = None if force else _cached_parity(target, int8)  # another process may have just made it
            if cached is None:
                cached = _export(ref, kind, target, int8, force, say, int8_min_cosine)
    return ExportReport(
        model=ref.requested, kind=kind, fingerprint=ref.fingerprint, directory=target,
        onnx=target / ONNX_FP32, onnx_int8=target / ONNX_INT8 if int8 else None, parity=cached.report,
        reused=cached.reused, seconds=time.perf_counter() - started,
    )


@contextmanager
def _exclusive(target: Path, say: Progress) -> Iterator[None]:
    """Hold the export lock of `target` (an advisory file lock, released when the process dies)."""
    with (target / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process exporting into {target}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True, slots=True)
class _Outcome:
    report: ParityReport
    reused: bool


def _cached_parity(target: Path, int8: bool) -> _Outcome | None:
    """The stored report when every file asked for is in the cache, else None."""
    if not (target / ONNX_FP32).is_file() or (int8 and not (target / ONNX_INT8).is_file()):
        return None
    try:
        report = ParityReport.from_dict(json.loads((target / PARITY_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if int8 and report.int8 is None:
        return None
    return _Outcome(report, reused=True)


def _export(ref: ModelRef, kind: Kind, target: Path, int8: bool, force: bool, say: Progress,
            int8_min_cosine: float) -> _Outcome:
    """Build what is missing in a scratch folder beside `target`; move it in once parity holds."""
    say(f"loading {ref.requested} ({kind}) from {ref.path}")
    tokenizer = load_tokenizer(ref)
    module = torch_module(ref, kind)
    parity_of, max_length = _parity_check(ref, kind, tokenizer, torch_backend(module, graph_inputs(tokenizer)))

    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as scratch:
        staged = Path(scratch)
        fp32_path = target / ONNX_FP32
        if force or not fp32_path.is_file():
            say(f"exporting the {kind} graph with torch.onnx (dynamo)")
            fp32_path = staged / ONNX_FP32
            _export_graph(module, tokenizer, kind, fp32_path)
        say("checking fp32 parity")
        report = ParityReport(texts=len(SAMPLE_TEXTS), max_length=max_length, fp32=parity_of(fp32_path),
                              int8_min_cosine=int8_min_cosine)
        if not report.fp32_passed:
            reorders = " and reorders the MaxSim samples" if report.fp32.same_order is False else ""
            raise ModelError(f"the ONNX export of {ref.requested} differs from PyTorch by "
                             f"{report.fp32.max_abs_diff:.3g} (tolerance {report.fp32_max_abs_diff}){reorders}; "
                             "it was not installed")
        quantization_failed: Int8QuantizationError | None = None
        if int8:
            try:
                report = _quantize_best(report, staged, fp32_path, parity_of, say)
            except Int8QuantizationError as exc:  # the fp32 graph passed: install it all the same
                quantization_failed = exc
        (staged / PARITY_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        for file in staged.iterdir():
            if file.name != ONNX_INT8 or report.int8_passed:
                os.replace(file, target / file.name)
    if quantization_failed is not None:
        raise quantization_failed
    if int8 and not report.int8_passed:
        assert report.int8 is not None
        kept = f" with {len(report.int8_kept_fp32)} weight nodes left fp32" if report.int8_kept_fp32 else ""
        order = "" if report.int8.same_order is not False else ", and reorders the MaxSim samples"
        raise Int8ParityError(f"int8 {ref.requested} reaches cosine {report.int8.min_cosine:.4f} to PyTorch{kept}"
                              f"{order}; the bar is {report.int8_bar}: it was not installed (use int8=false)")
    return _Outcome(report, reused=False)


def _parity_check(ref: ModelRef, kind: Kind, tokenizer: Any,
                  reference_backend: Backend) -> tuple[Callable[[Path], Comparison], int]:
    """A function comparing an ONNX graph with the PyTorch reference on the parity samples, and their max_length.

    A late-interaction graph runs the samples as its encoder would (markers, [MASK] padding, punctuation
    dropped) and is compared on token vectors, MaxSim scores and the samples' MaxSim order.
    """
    if kind == "colbert":
        from neurank.onnx_models.colbert import LateInputs

        probe = LateProbe.build(tokenizer, LateInputs.build(tokenizer, read_late_interaction(ref.path)))
        expected = probe.run(reference_backend)
        return (lambda path: probe.compare(expected, probe.run(onnx_backend(onnx_session(path), ref, kind))),
                probe.max_length)
    batches, max_length = parity_batches(tokenizer, kind)
    reference = run_batches(reference_backend, batches)
    return (lambda path: compare(reference, run_batches(onnx_backend(onnx_session(path), ref, kind), batches)),
            max_length)


def _quantize_best(report: ParityReport, staged: Path, fp32_path: Path,
                   parity_of: Callable[[Path], Comparison], say: Progress) -> ParityReport:
    """Quantize to `staged/model_qint8.onnx` per tensor or per channel, whichever is closer to PyTorch.

    When neither meets the bar, the weight nodes whose quantization alone costs the most cosine stay fp32, one
    at a time, until it holds or `MAX_FP32_SHARE` of them are fp32: in MiniLM two projections of the first
    layer (attention output and FFN output, whose inputs carry outliers) cost as much as the other 34 together.
    """
    int8_path = staged / ONNX_INT8

    def meets(comparison: Comparison) -> bool:
        return replace(report, int8=comparison).int8_passed is True

    def attempt(per_channel: bool, keep_fp32: Sequence[str] = ()) -> Comparison:
        quantize_int8(fp32_path, int8_path, per_channel=per_channel, keep_fp32=keep_fp32)
        return parity_of(int8_path)

    say("quantizing to int8 (per tensor, then per channel)")
    by_variant = {per_channel: attempt(per_channel) for per_channel in (False, True)}
    per_channel = max(by_variant, key=lambda variant: (meets(by_variant[variant]), by_variant[variant].min_cosine))
    comparison, kept = by_variant[per_channel], []
    if not meets(comparison):
        nodes = weight_nodes(fp32_path)
        say(f"int8 misses the bar ({report.int8_bar}) at cosine {comparison.min_cosine:.4f}: measuring what "
            f"quantizing each of {len(nodes)} weight nodes costs")
        cost = {node: 1 - attempt(per_channel, [other for other in nodes if other != node]).min_cosine
                for node in nodes}
        for node in sorted(nodes, key=cost.__getitem__, reverse=True)[: max(1, int(len(nodes) * MAX_FP32_SHARE))]:
            kept.append(node)
            comparison = attempt(per_channel, kept)
            if meets(comparison):
                break
        say(f"kept {len(kept)} of {len(nodes)} weight nodes in fp32: int8 cosine {comparison.min_cosine:.4f}")
    elif not per_channel:
        attempt(per_channel)  # the file holds the per-channel variant, tried last
    return replace(report, int8=comparison, int8_per_channel=per_channel, int8_kept_fp32=tuple(kept))


def _export_graph(module: Any, tokenizer: Any, kind: Kind, path: Path) -> None:
    """torch.onnx.export with dynamo and dynamic batch and sequence axes (the legacy exporter was wrong).

    Attention is exported in its eager form: plain MatMul/Softmax, which ONNX Runtime runs faster than the
    decomposed SDPA with its per-layer NaN guards. The module is changed in place.
    """
    import torch

    if hasattr(module.model, "set_attn_implementation"):
        module.model.set_attn_implementation("eager")
    names = graph_inputs(tokenizer)
    texts = ["a short example", "a longer example sentence for the exporter to trace through"]
    pairs = ["a passage", "another passage that is a little longer"] if kind in ("cross", "duo") else None
    example = tokenizer(texts, pairs, padding=True, return_tensors="pt", return_token_type_ids=True)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    size = sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms" ×8
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            program = torch.onnx.export(
                module, tuple(example[name] for name in names), dynamo=True, verbose=False,
                input_names=list(names), output_names=[_OUTPUT_NAMES[kind]],
                dynamic_shapes=tuple({0: batch, 1: sequence} for _ in names),
            )
        finally:
            exporter_log.setLevel(level)
    if program is None:
        raise ModelError("torch.onnx.export returned no program")
    program.save(str(path), external_data=size > _EXTERNAL_DATA_BYTES)
