"""Re-ingest into an existing index: the same spec is reused, new models rebuild a version, the rest is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from neurank.errors import ConfigError
from neurank.index_spec import IndexSpec
from neurank.ingest.inline import ensure_index
from neurank.stores import LocalStore

SPEC = IndexSpec(dense_dimension=3, models={"dense": "fp-1"})


@pytest.mark.parametrize(("change", "named"), [
    ({"bm25_k1": 1.2}, "bm25_k1 0.9 → 1.2"),
    ({"bm25_b": 0.75}, "bm25_b 0.4 → 0.75"),
    ({"hnsw_m": 32}, "hnsw_m 16 → 32"),
    ({"hnsw_ef_search": 100}, "hnsw_ef_search 256 → 100"),
    ({"knn_engine": "faiss"}, "knn_engine 'lucene' → 'faiss'"),
    ({"language": "standard"}, "language 'english' → 'standard'"),
    ({"models": {"dense": "fp-2"}}, "models"),
])
def test_a_changed_setting_is_refused_with_what_changed(tmp_path: Path, change: dict[str, Any], named: str) -> None:
    store = LocalStore(tmp_path)
    ensure_index(store, "docs", SPEC)
    ensure_index(store, "docs", SPEC)
    with pytest.raises(ConfigError, match="built with other settings") as raised:
        ensure_index(store, "docs", replace(SPEC, **change))
    assert named in str(raised.value)
    assert store.index_spec("docs") == SPEC


def test_index_specs_refuse_invalid_values() -> None:
    for bad in ({"language": "klingon"}, {"dense_dimension": 0}, {"dense_dimension": 16_001},
                {"space_type": "hamming"}, {"bm25_b": 1.5}, {"hnsw_m": 1}, {"shards": 0}):
        with pytest.raises(ConfigError):
            IndexSpec(**bad)


def test_only_a_change_of_models_builds_a_new_version() -> None:
    assert SPEC.rebuilds_as(replace(SPEC, models={"dense": "fp-2"}, dense_dimension=8, space_type="l2"))
    assert not SPEC.rebuilds_as(replace(SPEC, models={"dense": "fp-2"}, bm25_k1=2.0))
    assert not SPEC.rebuilds_as(replace(SPEC, bm25_k1=2.0))
    assert IndexSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ConfigError, match="future_field"):
        IndexSpec.from_dict({**SPEC.to_dict(), "future_field": 1})
