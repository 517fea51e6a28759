"""The `content.ngram` subfield: its analyzer in both dialects' mappings, the `match` sent for it, and the local
store's scores (derived from the `content` postings) against a hand computation of Lucene's `SynonymQuery`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.es_spec import ELASTICSEARCH
from tests.spec import validate
from tests.stores.contract import encoded
from tests.stores.test_local import lucene_bm25

from neurank.errors import ConfigError, StoreError
from neurank.index_spec import IndexSpec
from neurank.mappings import FieldTypes, elasticsearch_index_body, index_body
from neurank.retrieval import TextQuery
from neurank.stores import LocalStore
from neurank.stores.elasticsearch.dsl import search_body as es_search_body
from neurank.stores.local.ngrams import grams
from neurank.stores.opensearch.dsl import search_body, sub_query

NGRAM_SPEC = IndexSpec(language="english", ngram=3)


def test_grams_are_every_window_of_the_term() -> None:
    assert grams("statin", 3) == ["sta", "tat", "ati", "tin"]
    assert grams("banana", 3) == ["ban", "ana", "nan", "ana"]
    assert grams("at", 3) == []


def test_both_dialects_map_the_subfield_with_the_language_chain_then_ngrams() -> None:
    body = index_body(NGRAM_SPEC, version="0")
    validate("indices.create", body)
    es_body = elasticsearch_index_body(NGRAM_SPEC, version="0", types=FieldTypes())
    ELASTICSEARCH.validate("indices.create", es_body)
    for created in (body, es_body):
        assert created["mappings"]["properties"]["content"]["fields"] == {
            "ngram": {"type": "text", "analyzer": "neurank_ngram"}}
        analysis = created["settings"]["index"]["analysis"]
        assert analysis["analyzer"]["neurank_ngram"]["filter"] == [
            "neurank_possessive", "lowercase", "neurank_stop", "neurank_stemmer", "neurank_ngram"]
        assert analysis["filter"]["neurank_ngram"] == {"type": "ngram", "min_gram": 3, "max_gram": 3}
    assert "fields" not in index_body(IndexSpec(), version="0")["mappings"]["properties"]["content"]
    with pytest.raises(ConfigError, match="ngram must be 0"):
        IndexSpec(ngram=1)


def test_the_query_adds_a_match_on_the_subfield() -> None:
    query = TextQuery("cholestrol", 10, ngram=True)
    sent = sub_query(query, neural_sparse=True)
    assert sent == {"bool": {"should": [{"match": {"content": {"query": "cholestrol"}}},
                                        {"match": {"content.ngram": {"query": "cholestrol"}}}]}}
    validate("search", search_body(sent, 10))
    ELASTICSEARCH.validate("search", es_search_body(query, sparse_vector=True, candidates=None))


CORPUS = {"d1": "cholesterol statins", "d2": "heart at risk", "d3": "diet", "d4": "banana"}
GRAMS = {"n": 4, "sum_dl": 6, "k1": 1.2, "b": 0.75}
"""The subfield's statistics: every document has a term of 3+ letters; lengths 2, 2 (`at` makes no gram), 1, 1."""
WORDS = {"n": 4, "sum_dl": 7, "k1": 1.2, "b": 0.75}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    local = LocalStore(tmp_path / "store")
    local.create_index("grams", IndexSpec(language="standard", bm25_k1=1.2, bm25_b=0.75, ngram=3))
    local.upsert("grams", [encoded(doc_id, text) for doc_id, text in CORPUS.items()])
    return local


def search(store: LocalStore, text: str, ngram: bool = True) -> dict[str, float]:
    return dict(store.search("grams", [TextQuery(text, 10, ngram=ngram)])[0])


def test_a_typo_matches_through_shared_grams(store: LocalStore) -> None:
    # cho hol ole les est rol of "cholestrol" are in "cholesterol" (str, tro are not): frequency 6, df 1
    assert search(store, "cholestrol", ngram=False) == {}
    assert search(store, "cholestrol") == {"d1": lucene_bm25(6, 2, df=1, **GRAMS)}


def test_a_gram_repeated_in_the_query_term_counts_twice(store: LocalStore) -> None:
    # "ananas": ana ×2, nan, nas; in "banana" ana occurs twice and nan once: 2·2 + 1 = 5
    assert search(store, "ananas") == {"d4": lucene_bm25(5, 1, df=1, **GRAMS)}


def test_words_and_grams_are_two_summed_clauses(store: LocalStore) -> None:
    words = lucene_bm25(1, 2, df=1, **WORDS)
    statins, cholestrol = lucene_bm25(5, 2, df=1, **GRAMS), lucene_bm25(6, 2, df=1, **GRAMS)
    grams_clause = np.float32(np.float64(statins) + np.float64(cholestrol))
    total = np.float32(np.float64(words) + np.float64(grams_clause))
    assert search(store, "statins cholestrol") == {"d1": float(total)}


def test_an_index_without_the_subfield_refuses_an_ngram_match(tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "plain")
    local.create_index("plain", IndexSpec(language="standard"))
    local.upsert("plain", [encoded("d1", "statins")])
    with pytest.raises(StoreError, match="no n-gram subfield"):
        local.search("plain", [TextQuery("statins", 10, ngram=True)])
