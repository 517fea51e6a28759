"""Index mappings as neurank makes them, for the saved objects to be built from."""

from __future__ import annotations

from typing import Any

from neurank import __version__
from neurank.index_spec import IndexSpec
from neurank.mappings import index_body

FULL_SPEC = IndexSpec(dense_dimension=8, colbert_dimension=4,
                      models={"splade": "a" * 16, "deepct": "b" * 16, "dense": "c" * 16, "colbert": "d" * 16})


def properties(spec: IndexSpec) -> dict[str, Any]:
    """The OpenSearch mapping of an index built for `spec`."""
    return dict(index_body(spec, version=__version__)["mappings"]["properties"])
