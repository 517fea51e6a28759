"""`drop_index` says whether there was an index to drop, on the local store and on a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.stores.contract import SPEC, encoded

from neurank.stores import LocalStore, Store
from neurank.stores.opensearch import OpenSearchStore


def check_drop(store: Store) -> None:
    store.create_index("dropped", SPEC)
    store.upsert("dropped", [encoded("d1")])
    assert store.drop_index("dropped") is True
    assert store.drop_index("dropped") is False
    assert store.drop_index("never-created") is False


def test_local_store(tmp_path: Path) -> None:
    check_drop(LocalStore(tmp_path / "store"))


@pytest.mark.integration
def test_opensearch_store(osmem_store: OpenSearchStore) -> None:
    check_drop(osmem_store)
