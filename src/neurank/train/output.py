"""A trained model's folder made self-contained: its parity-checked ONNX graphs copied into `<folder>/onnx/`.

`export_model` writes into the export cache under `home`; the onnx runtime also looks in the model folder's
own `onnx/`, so copying the files there lets `--rerank-model DIR` (or `--dense-model`, `--sparse-model`)
run on another machine or with another `NEURANK_HOME`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from neurank.errors import Int8Error
from neurank.onnx_models.export import ExportReport, Progress, export_model
from neurank.onnx_models.registry import PARITY_FILE


def export_into(folder: Path, *, home: Path, progress: Progress | None = None) -> ExportReport:
    """Export `folder` to ONNX fp32 and int8 (parity-checked), then copy the graphs into `folder/onnx/`.

    An int8 graph that fails parity, or that onnxruntime fails to make, is left out with a message; the fp32
    graph alone is kept (the report's `onnx_int8` is then None) rather than losing the whole training run.
    """
    try:
        report = export_model(str(folder), home=home, int8=True, progress=progress)
    except Int8Error as exc:
        if progress:
            progress(f"{exc}; keeping the fp32 export only")
        report = export_model(str(folder), home=home, int8=False, progress=progress)
    target = folder / "onnx"
    target.mkdir(exist_ok=True)
    for source in (report.onnx, report.onnx_int8, report.directory / PARITY_FILE):
        if source is not None and source.is_file():
            shutil.copy2(source, target / source.name)
    return report
