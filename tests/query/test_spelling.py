"""Spelling correction against an index's terms: hand-worked variants and choices, on the real local store."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import pytest
from tests.stores.contract import SPEC, encoded

from neurank.config import Settings
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.spelling import SpellingCorrector, WordPieces, one_edit
from neurank.query.target import SearchTarget
from neurank.stores import LocalStore
from neurank.stores.analysis import get_analyzer
from neurank.stores.protocol import EncodedDocument

INDEX = "spell"
TEXTS = {
    "a": "Diabetes patients and insulin treatment",
    "b": "Insulin resistance in diabetes",
    "c": "Diabetes in children",
    "d": "Diabetic retinopathy screening",
    "e": "Treatment of retinopathy in patients",
    "f": "The patient ward",
}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    documents: list[EncodedDocument] = [encoded(doc_id, text) for doc_id, text in TEXTS.items()]
    store.upsert(INDEX, documents)
    return store


class Lookups:
    """The store's document frequencies, recording each call's terms (how many round trips a query costs)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.calls: list[set[str]] = []

    def __call__(self, terms: Collection[str]) -> Mapping[str, int]:
        self.calls.append(set(terms))
        return self.store.document_frequencies(INDEX, terms)


def corrector(store: LocalStore, pieces: WordPieces | None = None) -> tuple[SpellingCorrector, Lookups]:
    lookups = Lookups(store)
    return SpellingCorrector(get_analyzer("english"), lookups, pieces=pieces), lookups


@pytest.fixture(scope="module")
def minilm_pieces() -> WordPieces:
    """The bundled MiniLM's tokenizer: how many word pieces it makes of a word."""
    return EncoderBundle.from_settings(Settings(runtime="torch", sparse_model="none")).dense.pieces


def test_one_edit_is_every_deletion_swap_replacement_and_insertion() -> None:
    variants = one_edit("ab")
    # deletions a, b; swap ba; replacements ?b and a? (25 each, the word itself excluded); insertions 3 × 26
    assert {"a", "b", "ba", "zb", "az", "xab", "axb", "abx"} <= variants
    assert "ab" not in variants
    assert len(variants) == len({"a", "b", "ba"} | {c + "b" for c in "abcdefghijklmnopqrstuvwxyz"}
                                | {"a" + c for c in "abcdefghijklmnopqrstuvwxyz"}
                                | {w[:i] + c + w[i:] for w in ["ab"] for i in range(3)
                                   for c in "abcdefghijklmnopqrstuvwxyz"}) - 1


def test_unknown_words_become_the_variant_whose_term_most_documents_hold(store: LocalStore,
                                                                         minilm_pieces: WordPieces) -> None:
    speller, lookups = corrector(store, minilm_pieces)
    result = speller.correct("Diabtes patinets, and insulin tretment?")
    assert result.text == "diabetes patients, and insulin treatment?"
    assert result.changes == (("Diabtes", "diabetes"), ("patinets", "patients"), ("tretment", "treatment"))
    # one lookup for the query's own terms, one for the variants of the unknown ones
    assert len(lookups.calls) == 2
    assert lookups.calls[0] == {"diabt", "patinet", "insulin", "tretment"}


def test_ties_go_to_a_whole_word_of_the_tokenizer_then_the_shortest(store: LocalStore,
                                                                    minilm_pieces: WordPieces) -> None:
    assert (minilm_pieces("diabetes"), minilm_pieces("diabets")) == (1, 3)  # dia ##bet ##s
    # "diabtes" is one edit from "diabetes" (an insertion) and "diabets" (a swap), both the term diabet
    # (4 documents): the tokenizer knows the first whole
    assert corrector(store, minilm_pieces)[0].correct("diabtes").text == "diabetes"
    # without a tokenizer the shorter is taken
    assert corrector(store)[0].correct("diabtes").text == "diabets"
    # "diabetis" → "diabetes" (1 piece) over "diabetic" (dia ##bet ##ic) and "diabets", all the term diabet
    assert minilm_pieces("diabetic") == 3
    assert corrector(store, minilm_pieces)[0].correct("diabetis").text == "diabetes"
    # "tretment" → "treatment", the only variant whose term (treatment: 2 documents) any document holds
    assert corrector(store)[0].correct("tretment").text == "treatment"


def test_known_words_acronyms_digits_short_words_and_stop_words_stay(store: LocalStore) -> None:
    speller, lookups = corrector(store)
    for text in ["insulin treatment", "TRETMENT", "mTORC", "Tretment1", "the", "wrd"]:
        result = speller.correct(text)
        assert result.text == text and result.changes == ()
    assert lookups.calls == [{"insulin", "treatment"}]  # the rest were never looked up
    assert speller.correct("Foxp3 retinopaty").text == "Foxp3 retinopathy"


def test_a_word_with_no_known_variant_stays_as_typed(store: LocalStore) -> None:
    speller, _ = corrector(store)
    result = speller.correct("photosynthesis in insulin")
    assert result.text == "photosynthesis in insulin" and result.changes == ()


def test_a_search_with_spelling_searches_the_corrected_query(settings: Settings, store: LocalStore) -> None:
    bm25_only = settings.model_copy(update={"sparse_model": "none", "dense_model": "none"})
    searcher = SearchTarget(store, INDEX, EncoderBundle.from_settings(bm25_only)).searcher()
    plan = searcher.plan("bm25", k=3, spelling=True)
    typed = searcher.search("retinopaty screning", plan)
    clean = searcher.search("retinopathy screening", searcher.plan("bm25", k=3))
    assert [(hit.id, hit.score) for hit in typed.hits] == [(hit.id, hit.score) for hit in clean.hits]
    answer = typed.to_dict()
    assert answer["query"] == "retinopaty screning"
    assert answer["spelling"] == {"query": "retinopathy screening", "corrections": [
        {"word": "retinopaty", "replacement": "retinopathy"}, {"word": "screning", "replacement": "screening"}]}
    assert "spelling" in typed.timings_ms
    unplanned = searcher.search("retinopaty screning", searcher.plan("bm25", k=3))
    assert unplanned.hits == [] and "spelling" not in unplanned.to_dict()
