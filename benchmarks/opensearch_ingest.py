"""Is bulk writing the bottleneck of ingest into OpenSearch? Encode-only vs end-to-end docs/s, in one run.

    python benchmarks/opensearch_ingest.py --dataset ../shared/data/scifact --docs 500

Same documents, same process, same encoders (the configured sparse, DeepCT and dense models): encode only,
then write those encodings alone into osmem-server, then the whole inline ingest (skip check, encode, `_bulk`,
commit) into a fresh index, then encode only again. The end-to-end pass is bracketed by the two encode-only
passes, whose mean is the reference, so that drift of the machine's speed during the run cancels out. An
untimed encode pass over the same documents comes first: PyTorch's CPU kernels are prepared per input shape,
which makes a first pass over new shapes slower.
Target: end-to-end >= 90% of encode-only docs/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from itertools import islice
from pathlib import Path

from osmem_server import OsmemServer

from common import header
from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.ingest.core import batched
from neurank.ingest.inline import ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.opensearch import OpenSearchStore
from neurank.stores.protocol import EncodedDocument

BATCH = 256
TARGET = 0.9


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--runtime", default="torch", help="torch or onnx (onnx needs `neurank models export`)")
    args = parser.parse_args()

    documents = list(islice((doc for doc in read_corpus(args.dataset) if isinstance(doc, Document)), args.docs))
    with tempfile.TemporaryDirectory() as tmp, OsmemServer.start(japanese=False) as server:
        settings = Settings(home=Path(tmp), runtime=args.runtime, int8=False)
        encoders = EncoderBundle.from_settings(settings)
        for batch in batched(documents, BATCH):
            encoders.encode(batch)
        store = OpenSearchStore(server.url, settings)
        encoded: list[EncodedDocument] = []
        first_encode_s = timed(lambda: [encoded.extend(encoders.encode(batch))
                                        for batch in batched(documents, BATCH)])
        store.create_index("write-only", encoders.index_spec(settings))
        write_s = timed(lambda: [store.upsert("write-only", batch) for batch in batched(encoded, BATCH)])
        summary = None

        def ingest() -> None:
            nonlocal summary
            summary = ingest_records(documents, store, "end-to-end", encoders, settings, batch_size=BATCH)

        end_to_end_s = timed(ingest)
        assert summary is not None and summary.indexed == len(documents), summary
        second_encode_s = timed(lambda: [encoders.encode(batch) for batch in batched(documents, BATCH)])
    steps = {"encode only, before": first_encode_s, "write only (_bulk)": write_s, "end to end": end_to_end_s,
             "encode only, after": second_encode_s}
    rates = {name: len(documents) / seconds for name, seconds in steps.items()}
    reference = (rates["encode only, before"] + rates["encode only, after"]) / 2
    ratio = rates["end to end"] / reference
    models = ", ".join(f"{role}={fp}" for role, fp in encoders.models().items())
    print(header(f"osmem-server {version('osmem-server')}; runtime {args.runtime}; models {models}; "
                 f"{len(documents)} SciFact documents, batches of {BATCH}; one untimed warm-up pass, one run"))
    print()
    print("| step | docs/s | seconds |")
    print("|---|---:|---:|")
    for name, seconds in steps.items():
        print(f"| {name} | {rates[name]:.2f} | {seconds:.1f} |")
    print(f"| **end to end / mean encode only** | **{ratio:.1%}** (target >= {TARGET:.0%}) | |")


if __name__ == "__main__":
    main()
