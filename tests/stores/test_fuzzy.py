"""Fuzzy BM25 in the local store: Lucene's term expansion (edits, prefix, transpositions, top terms) and the blended
scores of `FuzzyQuery`, checked against hand-worked cases and a brute-force edit distance."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import encoded
from tests.stores.test_local import lucene_bm25

from neurank.errors import PlanError
from neurank.index_spec import IndexSpec
from neurank.retrieval import Fuzzy, TextQuery
from neurank.stores import LocalStore
from neurank.stores.local.fuzzy import FuzzyVocabulary

F32 = np.float32
VOCABULARY = ["cat", "cats", "act", "cut", "coat", "at", "a", "dog", "cart", "scat"]
THIRD = F32(1) - F32(1) / F32(3)
"""The boost of a term one edit from `cat` and at least as long: 1 − 1/3 in float32."""


def expand(term: str, fuzzy: Fuzzy, vocabulary: list[str] = VOCABULARY) -> list[tuple[str, float]]:
    found = FuzzyVocabulary((word, col) for col, word in enumerate(vocabulary)).expand(term, fuzzy)
    return [(vocabulary[col], float(boost)) for col, boost in found]


def test_one_edit_with_transpositions_ranks_by_boost_then_term() -> None:
    assert expand("cat", Fuzzy("1")) == [("cat", 1.0), ("act", THIRD), ("cart", THIRD), ("cats", THIRD),
                                         ("coat", THIRD), ("cut", THIRD), ("scat", THIRD), ("at", 0.5)]


def test_without_transpositions_a_swap_is_two_edits() -> None:
    assert "act" not in dict(expand("cat", Fuzzy("1", transpositions=False)))
    assert dict(expand("cat", Fuzzy("2", transpositions=False)))["act"] == pytest.approx(1 - 2 / 3)


def test_two_edits_reach_further_and_a_short_term_gets_a_negative_boost() -> None:
    expanded = dict(expand("cat", Fuzzy("2")))
    assert expanded["a"] == -1.0  # 1 − 2/min(1, 3): kept among the top terms, scored 0
    assert "dog" not in expanded  # three substitutions
    assert dict(expand("coats", Fuzzy("2")))["cat"] == F32(1) - F32(2) / F32(3)


def test_prefix_length_keeps_the_first_characters_as_typed() -> None:
    assert [term for term, _ in expand("cat", Fuzzy("1", prefix_length=1))] == ["cat", "cart", "cats", "coat", "cut"]
    # a prefix longer than the term fixes all of it; edits can still append
    assert [term for term, _ in expand("ca", Fuzzy("2", prefix_length=5))] == ["cat", "cart", "cats"]


def test_max_expansions_keeps_the_best_by_boost_then_term() -> None:
    assert [term for term, _ in expand("cat", Fuzzy("1", max_expansions=3))] == ["cat", "act", "cart"]
    assert [term for term, _ in expand("cat", Fuzzy("2", max_expansions=1))] == ["cat"]


@pytest.mark.parametrize(("fuzziness", "term", "edits"), [
    ("AUTO", "ab", 0), ("AUTO", "abc", 1), ("AUTO", "abcde", 1), ("AUTO", "abcdef", 2), ("AUTO", "ü" * 6, 2),
    ("AUTO:2,4", "a", 0), ("AUTO:2,4", "ab", 1), ("AUTO:2,4", "abcd", 2), ("0", "abcdef", 0), ("2", "a", 2),
])
def test_auto_edits_follow_the_term_length(fuzziness: str, term: str, edits: int) -> None:
    assert Fuzzy(fuzziness).max_edits(term) == edits


def test_auto_on_a_two_letter_term_matches_it_exactly() -> None:
    assert expand("at", Fuzzy("AUTO")) == [("at", 1.0)]
    assert expand("ca", Fuzzy("AUTO")) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fuzziness": "3"}, "edit distance 0, 1 or 2"), ({"fuzziness": "AUTO:6,3"}, "low <= high"),
    ({"fuzziness": "fuzzy"}, "not AUTO"), ({"prefix_length": -1}, "prefix_length"),
    ({"max_expansions": 0}, "max_expansions"), ({"max_expansions": 2000}, "clause limit"),
])
def test_bad_options_are_refused_by_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        Fuzzy(**kwargs)  # type: ignore[arg-type]


def test_fuzziness_is_normalized() -> None:
    assert Fuzzy("auto").fuzziness == "AUTO"
    assert Fuzzy("auto:3,6").fuzziness == "AUTO"
    assert Fuzzy(" AUTO:4,7 ").fuzziness == "AUTO:4,7"


def edit_distance(a: str, b: str, transpositions: bool) -> int:
    """Optimal string alignment (or Levenshtein without transpositions), by the textbook table."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if transpositions and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
    return table[len(a)][len(b)]


@pytest.mark.parametrize("transpositions", [True, False])
@pytest.mark.parametrize("prefix_length", [0, 2])
def test_expansion_equals_a_brute_force_scan(transpositions: bool, prefix_length: int) -> None:
    rng = random.Random(7)
    vocabulary = sorted({"".join(rng.choice("abcd") for _ in range(rng.randint(1, 7))) for _ in range(600)})
    for term in [*rng.sample(vocabulary, 40), "abcabc", "dd"]:
        fuzzy = Fuzzy("2", prefix_length=prefix_length, max_expansions=8, transpositions=transpositions)
        prefix = term[:prefix_length]
        brute = []
        for word in vocabulary:
            edits = edit_distance(term[len(prefix):], word[len(prefix):], transpositions)
            if word.startswith(prefix) and edits <= 2:
                boost = F32(1) if edits == 0 else F32(1) - F32(edits) / F32(min(len(word), len(term)))
                brute.append((-boost, word))
        assert expand(term, fuzzy, vocabulary) == [(word, float(-negated)) for negated, word in sorted(brute)[:8]]


# -- scores in the store --------------------------------------------------------------------------------------

CORPUS = {"d1": "cat cat dog", "d2": "cats", "d3": "act fast", "d4": "bird", "d5": "cat"}
STATS = {"n": 5, "sum_dl": 8, "k1": 1.2, "b": 0.75}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    local = LocalStore(tmp_path / "store")
    local.create_index("typos", IndexSpec(language="standard", bm25_k1=1.2, bm25_b=0.75))
    local.upsert("typos", [encoded(doc_id, text) for doc_id, text in CORPUS.items()])
    return local


def search(store: LocalStore, text: str, fuzzy: Fuzzy | None) -> dict[str, float]:
    return dict(store.search("typos", [TextQuery(text, 10, fuzzy)])[0])


def test_a_fuzzy_term_scores_its_expansions_with_the_blended_document_frequency(store: LocalStore) -> None:
    # `cat` expands to cat (boost 1, df 2), act and cats (one edit, boost 1 − 1/3, df 1 each): all three are
    # scored with the largest df, 2 (Lucene's BlendedTermQuery), each boosted by its similarity.
    expected = {
        "d1": lucene_bm25(2, 3, df=2, **STATS),
        "d5": lucene_bm25(1, 1, df=2, **STATS),
        "d2": lucene_bm25(1, 1, df=2, boost=float(THIRD), **STATS),
        "d3": lucene_bm25(1, 2, df=2, boost=float(THIRD), **STATS),
    }
    assert search(store, "cat", Fuzzy("1")) == expected
    assert list(search(store, "cat", Fuzzy("1"))) == ["d5", "d1", "d2", "d3"]


def test_query_terms_are_summed_and_a_repeated_term_doubles_its_boost(store: LocalStore) -> None:
    cat = lucene_bm25(2, 3, df=2, **STATS)
    dog = lucene_bm25(1, 3, df=1, **STATS)  # no index term is one edit from `dog`: its own df
    assert search(store, "cat dog", Fuzzy("1"))["d1"] == float(F32(np.float64(cat) + np.float64(dog)))
    assert search(store, "cat cat", Fuzzy("1"))["d2"] == lucene_bm25(1, 1, df=2, boost=float(THIRD * F32(2)), **STATS)


def test_a_typo_finds_what_exact_matching_misses(store: LocalStore) -> None:
    assert search(store, "cta", None) == {}
    assert search(store, "cta", Fuzzy("AUTO")) == {"d5": lucene_bm25(1, 1, df=2, boost=float(THIRD), **STATS),
                                                  "d1": lucene_bm25(2, 3, df=2, boost=float(THIRD), **STATS)}


def test_without_fuzziness_scores_are_unchanged(store: LocalStore) -> None:
    exact = {"d1": lucene_bm25(2, 3, df=2, **STATS), "d5": lucene_bm25(1, 1, df=2, **STATS)}
    assert search(store, "cat", None) == exact
    assert search(store, "cat", Fuzzy("0")) == search(store, "cat", None)


def test_deleted_documents_leave_the_expansion(store: LocalStore) -> None:
    store.delete("typos", ["d2"])
    assert "d2" not in search(store, "cat", Fuzzy("1"))
    assert set(search(store, "cats", Fuzzy("1"))) == {"d1", "d5"}  # `cats` itself has no live document left
