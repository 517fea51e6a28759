"""Every cluster index keeps each document's top expansion terms as a `keyword` array: Discover shows them and a
terms aggregation counts them (neither Kibana nor Dashboards can show or aggregate `rank_features` /
`sparse_vector`). Against osmem-server (OpenSearch) and noida-db (Elasticsearch)."""

from __future__ import annotations

import pytest
from tests.stores.contract import SPEC, encoded

from neurank.mappings import EXPANSION_TERMS_FIELD
from neurank.stores.cluster import ClusterStore
from neurank.stores.cluster.documents import top_terms

pytestmark = pytest.mark.integration

WEIGHTS = {f"t{i:02d}": float(i + 1) for i in range(30)}


@pytest.fixture(params=["osmem_store", "es_store"])
def store(request: pytest.FixtureRequest) -> ClusterStore:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_top_terms_are_the_heaviest_first_ties_by_term() -> None:
    assert top_terms({"b": 1.0, "a": 1.0, "c": 3.0, "d": 0.5}, 3) == ["c", "a", "b"]


def test_the_top_terms_are_stored_and_aggregate(store: ClusterStore) -> None:
    store.drop_index("terms")
    store.create_index("terms", SPEC)
    store.upsert("terms", [encoded("a", sparse={"splade": WEIGHTS, "deepct": {"zz": 99.0}}),
                           encoded("b", sparse={"splade": {"t29": 2.0, "other": 1.0}}), encoded("c")])
    store.count("terms")  # refreshes
    source = store.client.get(index="terms", id="a")["_source"]
    assert source[EXPANSION_TERMS_FIELD] == [f"t{i:02d}" for i in range(29, 9, -1)]
    aggregated = store.client.search(index="terms", body={
        "size": 0, "aggregations": {"top": {"terms": {"field": EXPANSION_TERMS_FIELD, "size": 3}}}})
    buckets = aggregated["aggregations"]["top"]["buckets"]
    assert buckets[0] == {"key": "t29", "doc_count": 2}
    store.drop_index("terms")


def test_zero_leaves_the_field_out(store: ClusterStore) -> None:
    store._settings = store._settings.model_copy(update={"expansion_terms": 0})  # the same client, another setting
    store.drop_index("terms0")
    store.create_index("terms0", SPEC)
    store.upsert("terms0", [encoded("a", sparse={"splade": WEIGHTS})])
    assert EXPANSION_TERMS_FIELD not in store.client.get(index="terms0", id="a")["_source"]
    store.drop_index("terms0")
