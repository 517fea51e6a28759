"""Late interaction on OpenSearch (SCORING.md §7): the `lateInteractionScore` body against the spec, the score
transform against k-NN's formula on worked examples, and the same ranks and MaxSim from the server-side and the
client-side paths. osmem has no k-NN plugin, so the server-side path answers from a cluster stand-in that runs
k-NN's formula (`reference_scoring.late_interaction_score`) on the documents the store wrote; the client-side
path runs on osmem for real in the contract suite (test_opensearch.py) and in test_local_vs_osmem.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch
from tests.spec import validate, validate_msearch
from tests.stores import reference_scoring
from tests.stores.conftest import Recorder
from tests.stores.contract import LATE_CORPUS, LATE_QUERY, LATE_SPEC, encoded, late_interaction

from neurank.config import Settings
from neurank.index_spec import SPACE_TYPES, IndexSpec
from neurank.mappings import index_body
from neurank.retrieval import LateInteractionQuery, TextQuery
from neurank.stores import LocalStore, scoring
from neurank.stores.cluster.documents import document_source
from neurank.stores.opensearch import Capabilities, OpenSearchStore
from neurank.stores.opensearch.dsl import (
    LATE_INTERACTION_SCRIPT,
    late_interaction_query,
    msearch_lines,
    search_body,
)

URL = "http://search.example:9200"
QUERY = np.array(LATE_QUERY, np.float32)
MAXSIM = {"a": 1.5, "b": 2.0, "c": -1.5}


def unit_rows(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_body_is_a_valid_search_and_names_the_space_type() -> None:
    query = LateInteractionQuery(QUERY, ("a", "b", "a", "c"), 2)
    body = search_body(late_interaction_query(query), query.k)
    validate("search", body)
    validate_msearch(msearch_lines("docs", [body, search_body({"match": {"content": {"query": "x"}}}, 5)]))
    script_score = body["query"]["script_score"]
    assert script_score["query"] == {"bool": {"filter": [
        {"ids": {"values": ["a", "b", "c"]}}, {"exists": {"field": "colbert_tokens"}},
    ]}}
    assert script_score["script"] == {
        "source": "lateInteractionScore(params.query_vectors, 'colbert', params._source, params.space_type)",
        "lang": "painless",
        "params": {"query_vectors": LATE_QUERY, "space_type": "innerproduct"},
    }
    assert (body["size"], body["_source"]) == (2, False)


def test_the_transform_is_k_nn_s_on_the_worked_example() -> None:
    """innerproduct: S + n for S >= 0 (a: 1.5 + 3, b: 2 + 3), n / (1 - S / n) below (c: 3 / 1.5)."""
    expected = {"a": 4.5, "b": 5.0, "c": 2.0}
    for doc_id, vectors in LATE_CORPUS.items():
        if not vectors:
            continue
        score = reference_scoring.late_interaction_score(QUERY, vectors, "innerproduct")
        assert score == scoring.late_interaction_score(MAXSIM[doc_id], len(QUERY)) == np.float32(expected[doc_id])
        assert scoring.late_interaction_maxsim(score, len(QUERY)) == np.float32(MAXSIM[doc_id])


@pytest.mark.parametrize("space_type", SPACE_TYPES)
def test_every_space_ranks_unit_vectors_in_maxsim_order(space_type: str) -> None:
    """On L2-normalized rows cosine is the dot product and the squared distance 2 - 2·dot, so each space's score is
    a strictly increasing function of MaxSim; the store sends innerproduct, whose inverse it knows."""
    rng = np.random.default_rng(7)
    query = unit_rows(32, 16, rng)
    documents = [unit_rows(int(n), 16, rng) for n in rng.integers(1, 40, size=50)]
    maxsim = scoring.maxsim(query, documents)
    scores = np.array([reference_scoring.late_interaction_score(query, doc, space_type) for doc in documents])
    assert np.argsort(-scores, kind="stable").tolist() == np.argsort(-maxsim, kind="stable").tolist()
    if space_type == "innerproduct":
        back = np.array([scoring.late_interaction_maxsim(score, len(query)) for score in scores])
        np.testing.assert_allclose(back, maxsim, atol=2e-5)


@pytest.mark.parametrize(("knn", "server_side"), [(None, False), ((3, 2, 0), False), ((3, 3, 0), True),
                                                  ((3, 10), True)])
def test_the_function_needs_k_nn_3_3(knn: tuple[int, ...] | None, server_side: bool) -> None:
    assert Capabilities(None, knn).late_interaction is server_side


class LateInteractionCluster:
    """A k-NN 3.3 cluster stand-in: keeps the `_source` of indexed documents and answers a `script_score` with
    `lateInteractionScore` by k-NN's formula, reading `params._source` as the plugin does."""

    def __init__(self) -> None:
        self.sources: dict[str, dict[str, Any]] = {}

    def __call__(self, method: str, url: str, headers: Any = None, params: Any = None, body: Any = None) -> Any:
        path = url.split("?")[0]
        if path == "/_cat/plugins":
            return [{"name": "node-1", "component": "opensearch-knn", "version": "3.3.0.0"}]
        if path.endswith("/_search"):
            return self._search(json.loads(body) if isinstance(body, (str, bytes)) else body)
        return {"acknowledged": True}

    def _search(self, body: dict[str, Any]) -> Any:
        script_score = body["query"]["script_score"]
        ids_filter, exists = script_score["query"]["bool"]["filter"]
        script = script_score["script"]
        assert script["source"] == LATE_INTERACTION_SCRIPT
        hits = []
        for doc_id in ids_filter["ids"]["values"]:
            source = self.sources.get(doc_id)
            if source is None or exists["exists"]["field"] not in source:
                continue
            score = reference_scoring.late_interaction_score(
                script["params"]["query_vectors"], source["colbert"], script["params"]["space_type"])
            hits.append({"_id": doc_id, "_score": float(score)})
        hits.sort(key=lambda hit: -hit["_score"])
        return {"hits": {"hits": hits[: body["size"]]}}


def _server_side_store(recorder: Recorder, cluster: LateInteractionCluster) -> OpenSearchStore:
    client = recorder.attach(OpenSearch(hosts=[URL]), respond=cluster)
    return OpenSearchStore(URL, Settings(opensearch_neural_plugin=False), client=client)


def _index(cluster: LateInteractionCluster, documents: dict[str, Any], dimension: int = 4) -> None:
    """What `upsert` would have written, through the same `_source` builder."""
    for doc_id, vectors in documents.items():
        cluster.sources[doc_id] = document_source(encoded(doc_id, token_vectors=vectors), dimension)


def test_server_side_path_is_one_search_and_gives_maxsim(recorder: Recorder) -> None:
    cluster = LateInteractionCluster()
    _index(cluster, {**LATE_CORPUS, "plain": None})
    store = _server_side_store(recorder, cluster)
    assert store.capabilities() == Capabilities(None, (3, 3, 0))
    hits = late_interaction(store, "late", LATE_QUERY, ["a", "b", "c", "empty", "plain", "missing"], 10)
    assert hits == [("b", 2.0), ("a", 1.5), ("c", -1.5)]
    assert [r.url.split("?")[0] for r in recorder.requests] == ["/_cat/plugins", "/late/_search"]
    recorder.validate_all()


def test_server_side_and_local_store_agree_on_random_documents(recorder: Recorder, tmp_path: Path) -> None:
    """Rows already rounded to float16, so that the local store's default records hold the same values."""
    rng = np.random.default_rng(11)
    documents = {f"d{i}": unit_rows(int(n), 16, rng).astype(np.float16).astype(np.float32)
                 for i, n in enumerate(rng.integers(1, 30, size=40))}
    query = unit_rows(32, 16, rng)
    cluster = LateInteractionCluster()
    _index(cluster, documents, 16)
    local = LocalStore(tmp_path / "store")
    local.create_index("late", IndexSpec(colbert_dimension=16))
    local.upsert("late", [encoded(doc_id, token_vectors=rows) for doc_id, rows in documents.items()])
    server = late_interaction(_server_side_store(recorder, cluster), "late", query, list(documents), 20)
    client = late_interaction(local, "late", query, list(documents), 20)
    assert len(server) == 20
    assert [doc_id for doc_id, _ in server] == [doc_id for doc_id, _ in client]
    np.testing.assert_allclose([s for _, s in server], [s for _, s in client], atol=2e-5)


def test_a_mixed_search_sends_the_late_interaction_body_in_the_msearch(recorder: Recorder) -> None:
    cluster = LateInteractionCluster()
    msearch: list[Any] = []

    def respond(method: str, url: str, headers: Any = None, params: Any = None, body: Any = None) -> Any:
        if url.split("?")[0].endswith("/_msearch"):
            lines = [json.loads(line) for line in (body.decode() if isinstance(body, bytes) else body).splitlines()]
            msearch.extend(lines)
            hits = {"hits": {"hits": [{"_id": "a", "_score": 4.5}]}, "status": 200}
            return {"responses": [hits, hits]}
        return cluster(method, url, headers, params, body)

    store = OpenSearchStore(URL, Settings(opensearch_neural_plugin=False),
                            client=recorder.attach(OpenSearch(hosts=[URL]), respond=respond))
    text, late = store.search("late", [TextQuery("cells", 5), LateInteractionQuery(QUERY, ("a",), 5)])
    assert text == [("a", 4.5)] and late == [("a", 1.5)]
    assert "script_score" in msearch[3]["query"]
    recorder.validate_all()


def test_the_mapping_that_holds_them_is_valid() -> None:
    validate("indices.create", index_body(LATE_SPEC, version="0.1.0"))


def test_source_carries_float32_shortest_decimals_that_read_back_exactly() -> None:
    rows = unit_rows(180, 128, np.random.default_rng(3))
    source = document_source(encoded("x", token_vectors=rows), 128)
    assert source["colbert_tokens"] == 180
    np.testing.assert_array_equal(np.asarray(json.loads(json.dumps(source["colbert"])), np.float32), rows)
    assert len(json.dumps(source["colbert"])) < 0.7 * len(json.dumps(rows.tolist()))
