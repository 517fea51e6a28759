"""`_bulk` writes against a real osmem-server: a request the cluster refuses as a whole fails only its culprits."""

from __future__ import annotations

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionTimeout
from tests.stores.conftest import FAST_RETRIES, Recorder, Request

from neurank.stores.cluster.bulk import write
from neurank.stores.opensearch.store import BULK

pytestmark = pytest.mark.integration


def test_a_request_refused_as_a_whole_is_split_until_the_culprit_fails_alone(
    osmem_url: str, recorder: Recorder
) -> None:
    client = recorder.attach(OpenSearch(hosts=[osmem_url], timeout=30))
    client.indices.create(index="docs")
    ids = [f"d{i}" for i in range(7)]
    ids.insert(5, "x" * 513)
    actions = [{"_op_type": "index", "_index": "docs", "_id": doc_id, "_source": {"text": f"text of {doc_id[:8]}"}}
               for doc_id in ids]

    outcome = write(client, actions, BULK)

    assert sorted(outcome.done) == [0, 1, 2, 3, 4, 6, 7]
    assert list(outcome.failed) == [5]
    assert outcome.failed[5].startswith("the cluster refused the request (400): ")
    assert "is too long, must be no longer than 512 bytes" in outcome.failed[5]
    client.indices.refresh(index="docs")
    assert client.count(index="docs")["count"] == 7
    bulk_sizes = [len(request.lines) // 2 for request in recorder.requests if request.url.endswith("_bulk")]
    assert bulk_sizes == [8, 4, 4, 2, 1, 1, 2]


def test_a_chunk_that_timed_out_is_sent_again(osmem_url: str, recorder: Recorder) -> None:
    """opensearch-py reports a read timeout per item with status "TIMEOUT": no answer came, so it is retried."""
    client = recorder.attach(OpenSearch(hosts=[osmem_url], timeout=30))
    client.indices.create(index="slow")
    timeouts = iter([True])

    def fail(request: Request) -> None:
        if request.url.endswith("_bulk") and next(timeouts, False):
            raise ConnectionTimeout("TIMEOUT", "Read timed out. (read timeout=30)", TimeoutError())

    recorder.fail = fail
    actions = [{"_op_type": "index", "_index": "slow", "_id": f"d{i}", "_source": {"n": i}} for i in range(3)]
    outcome = write(client, actions, BULK, FAST_RETRIES)
    assert sorted(outcome.done) == [0, 1, 2] and not outcome.failed
    assert [request.url.endswith("_bulk") for request in recorder.requests].count(True) == 2
