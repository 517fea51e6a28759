"""Learned fusion on a cluster that could fuse itself: Elasticsearch (noida-db) licensed for the `rrf` retriever
still gets the sub-queries in one `_msearch`, and the model ranks their hits on the client."""

from __future__ import annotations

from itertools import islice

import pytest
from tests.fusion_slice import DEPTH, MODE, Slice
from tests.stores.conftest import EXACT_HNSW, FAST_RETRIES, Recorder, es_client, spec_kind

from neurank.documents import Document, read_corpus
from neurank.ingest.inline import ingest_records
from neurank.query.learned_fusion import LearnedFusion
from neurank.query.searcher import LEARNED_FUSION_NOTE
from neurank.query.target import SearchTarget
from neurank.retrieval import Fusion
from neurank.stores.elasticsearch import ElasticsearchStore
from neurank.train.fusion import FusionReport

pytestmark = [pytest.mark.integration, pytest.mark.slow]
INDEX = "learned-fusion"


def test_learned_fusion_goes_through_msearch_where_the_cluster_would_fuse(
        noida_url: str, fusion_slice: Slice, fusion_model: FusionReport) -> None:
    recorder = Recorder()
    settings = fusion_slice.settings.model_copy(update={"elasticsearch_license": "enterprise",
                                                        "elasticsearch_dense_index_options": EXACT_HNSW})
    store = ElasticsearchStore(noida_url, settings, client=es_client(noida_url, recorder), bulk=FAST_RETRIES,
                               server_version="8.15.3")
    store.drop_index(INDEX)
    documents = [doc for doc in islice(read_corpus(fusion_slice.folder), 40) if isinstance(doc, Document)]
    target = SearchTarget(store, INDEX, fusion_slice.target.encoders)
    try:
        assert ingest_records(documents, store, INDEX, target.encoders, settings).indexed == len(documents)
        searcher = target.searcher()
        assert store.fuses(Fusion("rrf"))
        fused = searcher.search(documents[0].title, searcher.plan(MODE, k=5, depth=DEPTH, fusion=Fusion("rrf")),
                                with_documents=False)
        assert recorder.requests[-1].body["retriever"]["rrf"]  # what the cluster does when it can
        plan = searcher.plan(MODE, k=5, depth=DEPTH, fusion=LearnedFusion.load(fusion_model.out), implied=False)
        sent = len(recorder.requests)
        result = searcher.search(documents[0].title, plan, with_documents=False)
        after = recorder.requests[sent:]
        assert not any("retriever" in request.body for request in after if isinstance(request.body, dict))
        assert [kind for kind in map(spec_kind, after) if kind] == ["msearch"]
        assert result.notes == [LEARNED_FUSION_NOTE]
        assert result.hits[0].id == documents[0].id and set(result.hits[0].stages) == {"bm25", "dense"}
        assert [hit.score for hit in result.hits] != [hit.score for hit in fused.hits]
        recorder.validate_all_es()
    finally:
        store.drop_index(INDEX)
