"""`neurank models export`: a model folder → pooled ONNX graph (+ int8), checked against PyTorch.

Files land in the export cache, `<home>/exports/<name>-<fingerprint>/`, only once parity holds, so the
onnx runtime never picks up a wrong graph. Nothing here runs implicitly: encoders asked for an export that
does not exist raise `ExportMissingError`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurank.errors import ModelError
from neurank.onnx_models.loading import (
    Kind,
    check_kind,
    graph_inputs,
    load_tokenizer,
    model_kind,
    onnx_backend,
    onnx_session,
    torch_backend,
    torch_module,
)
from neurank.onnx_models.parity import Comparison, ParityReport, compare, parity_batches, run_batches
from neurank.onnx_models.quantize import quantize_int8
from neurank.onnx_models.registry import ONNX_FP32, ONNX_INT8, PARITY_FILE, export_dir, resolve_model

Progress = Callable[[str], None]

_OUTPUT_NAMES: dict[Kind, str] = {"sparse": "sparse_weights", "dense": "sentence_embedding", "cross": "logits"}
_EXTERNAL_DATA_BYTES = 1_500_000_000
"""Above this the graph keeps its weights in a side file (protobuf stops at 2 GB)."""


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
    """True when the graphs were already in the cache (parity is re-checked anyway)."""
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "kind": self.kind, "fingerprint": self.fingerprint,
            "directory": str(self.directory), "onnx": str(self.onnx),
            "onnx_int8": str(self.onnx_int8) if self.onnx_int8 else None,
            "parity": self.parity.to_dict(), "reused": self.reused, "seconds": round(self.seconds, 2),
        }


def export_model(name_or_dir: str, *, home: Path, int8: bool, force: bool = False,
                 progress: Progress | None = None) -> ExportReport:
    """Export (and with `int8`, quantize) a model, or reuse the cached export; check parity; report.

    int8 is quantized per tensor and per channel; the variant closest to PyTorch is kept. Raises
    `ModelError` when a graph fails parity (fp32: max abs diff; int8: min cosine), naming the numbers.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    ref = resolve_model(name_or_dir, home)
    kind = model_kind(ref.path)
    check_kind(ref, kind)
    target = export_dir(ref, home)
    target.mkdir(parents=True, exist_ok=True)
    reused = not force and (target / ONNX_FP32).is_file() and (not int8 or (target / ONNX_INT8).is_file())
    tokenizer = load_tokenizer(ref)
    say(f"loading {ref.requested} ({kind}) from {ref.path}")
    module = torch_module(ref, kind)
    batches, max_length = parity_batches(tokenizer, kind)
    reference = run_batches(torch_backend(module, graph_inputs(tokenizer)), batches)

    def parity_of(path: Path) -> Comparison:
        return compare(reference, run_batches(onnx_backend(onnx_session(path), ref, kind), batches))

    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as scratch:
        staged = Path(scratch)
        fp32_path = target / ONNX_FP32
        if force or not fp32_path.is_file():
            say(f"exporting the {kind} graph with torch.onnx (dynamo)")
            fp32_path = staged / ONNX_FP32
            _export_graph(module, tokenizer, kind, fp32_path)
        say("checking fp32 parity")
        report = ParityReport(texts=len(batches) // 2, max_length=max_length, fp32=parity_of(fp32_path))
        if not report.fp32_passed:
            raise ModelError(f"the ONNX export of {ref.requested} differs from PyTorch by "
                             f"{report.fp32.max_abs_diff:.3g} (tolerance {report.fp32_max_abs_diff}); "
                             "it was not installed")
        if int8:
            report = _int8_parity(report, target, staged, fp32_path, force, parity_of, say)
        (staged / PARITY_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        for file in staged.iterdir():
            if file.name != ONNX_INT8 or report.int8_passed:
                os.replace(file, target / file.name)
    if int8 and not report.int8_passed:
        assert report.int8 is not None
        raise ModelError(f"int8 {ref.requested} reaches cosine {report.int8.min_cosine:.4f} to PyTorch, below "
                         f"{report.int8_min_cosine}; it was not installed (use int8=false)")
    return ExportReport(
        model=ref.requested, kind=kind, fingerprint=ref.fingerprint, directory=target,
        onnx=target / ONNX_FP32, onnx_int8=target / ONNX_INT8 if int8 else None, parity=report,
        reused=reused, seconds=time.perf_counter() - started,
    )


def _int8_parity(report: ParityReport, target: Path, staged: Path, fp32_path: Path, force: bool,
                 parity_of: Callable[[Path], Comparison], say: Progress) -> ParityReport:
    """Quantize both ways and keep the closer variant in `staged`, or re-check the cached int8 graph."""
    cached = target / ONNX_INT8
    if not force and cached.is_file() and fp32_path.parent == target:
        say("checking the cached int8 graph")
        previous = _read_parity(target)
        per_channel = previous.int8_per_channel if previous else None
        return _with_int8(report, parity_of(cached), per_channel)
    best: ParityReport | None = None
    for per_channel in (False, True):
        candidate = staged / f"int8-{'channel' if per_channel else 'tensor'}.onnx"
        say(f"quantizing to int8 ({'per channel' if per_channel else 'per tensor'})")
        quantize_int8(fp32_path, candidate, per_channel=per_channel)
        trial = _with_int8(report, parity_of(candidate), per_channel)
        if best is None or trial.int8.min_cosine > best.int8.min_cosine:  # type: ignore[union-attr]
            best = trial
    assert best is not None
    kept = staged / f"int8-{'channel' if best.int8_per_channel else 'tensor'}.onnx"
    os.replace(kept, staged / ONNX_INT8)
    for leftover in staged.glob("int8-*.onnx"):
        leftover.unlink()
    return best


def _with_int8(report: ParityReport, comparison: Comparison, per_channel: bool | None) -> ParityReport:
    return ParityReport(texts=report.texts, max_length=report.max_length, fp32=report.fp32,
                        int8=comparison, int8_per_channel=per_channel)


def _read_parity(target: Path) -> ParityReport | None:
    try:
        return ParityReport.from_dict(json.loads((target / PARITY_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _export_graph(module: Any, tokenizer: Any, kind: Kind, path: Path) -> None:
    """torch.onnx.export with dynamo and dynamic batch and sequence axes (the legacy exporter was wrong)."""
    import torch

    names = graph_inputs(tokenizer)
    texts = ["a short example", "a longer example sentence for the exporter to trace through"]
    pairs = ["a passage", "another passage that is a little longer"] if kind == "cross" else None
    example = tokenizer(texts, pairs, padding=True, return_tensors="pt", return_token_type_ids=True)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    size = sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(
            module, tuple(example[name] for name in names), dynamo=True, verbose=False,
            input_names=list(names), output_names=[_OUTPUT_NAMES[kind]],
            dynamic_shapes=tuple({0: batch, 1: sequence} for _ in names),
        )
    if program is None:
        raise ModelError("torch.onnx.export returned no program")
    program.save(str(path), external_data=size > _EXTERNAL_DATA_BYTES)
