"""Analyzers: the terms OpenSearch's built-in `english`, `russian` and `standard` analyzers index."""

from __future__ import annotations

import pytest
import Stemmer

from neurank.errors import ConfigError
from neurank.stores.analysis import MAX_TOKEN_LENGTH, get_analyzer, porter_stem, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world!", ["Hello", "world"]),
        ("pi is 3.14, not 1,000 or 2.", ["pi", "is", "3.14", "not", "1,000", "or", "2"]),
        ("e.g. the U.S.A. can't foo_bar", ["e.g", "the", "U.S.A", "can't", "foo_bar"]),
        ("groups ('low', 'high') x-ray 3'UTR", ["groups", "low", "high", "x", "ray", "3", "UTR"]),
        ("___ _x a_ foo:bar", ["_x", "a_", "foo:bar"]),
        ("naïve café (IL-6) TNF-α", ["naïve", "café", "IL", "6", "TNF", "α"]),
        (
            "日本語 カタカナ ひらがな ภาษาไทย",
            ["日", "本", "語", "カタカナ", "ひ", "ら", "が", "な", "ภาษาไทย"],
        ),
        ("smile 😀 x² ２０２０", ["smile", "😀", "x", "２０２０"]),
    ],
)
def test_standard_tokenizer(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokens_longer_than_the_maximum_are_cut() -> None:
    assert [len(token) for token in tokenize("a" * 600 + " b")] == [MAX_TOKEN_LENGTH, MAX_TOKEN_LENGTH, 90, 1]


def test_english_possessives_stopwords_and_porter() -> None:
    english = get_analyzer("english")
    text = "The John's dogs’S were running quickly into the laboratories"
    assert english.analyze(text) == ["john", "dog", "were", "run", "quickli", "laboratori"]


def test_english_keeps_lucene_porter_departures() -> None:
    english = get_analyzer("english")
    assert english.analyze("immunology immunological possibly possible us") == [
        "immunolog",
        "immunolog",
        "possibl",
        "possibl",
        "us",
    ]


def test_lowercase_is_per_code_point_like_java() -> None:
    assert get_analyzer("standard").analyze("ΣΟΦΟΣ İstanbul") == ["σοφοσ", "istanbul"]


@pytest.mark.parametrize(
    "word",
    [
        "caresses", "ponies", "ties", "cats", "feed", "agreed", "disabled", "matting", "mating", "meeting",
        "milling", "messing", "meetings", "happy", "sky", "relational", "conditional", "rational",
        "valenci", "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli",
        "analogousli", "vietnamization", "predication", "operator", "feudalism", "decisiveness",
        "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate",
        "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness", "revival",
        "allowance", "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant",
        "replacement", "adjustment", "dependent", "adoption", "homologou", "communism", "activate",
        "angulariti", "homologous", "effective", "bowdlerize", "probate", "rate", "cease", "controll",
        "roll", "generalizations", "oscillators", "hopping", "filing", "tanned", "falling", "hissing",
        "fizzed", "failing", "filed", "1990s", "naïvely",
    ],
)  # fmt: skip
def test_porter_matches_the_published_algorithm_elsewhere(word: str) -> None:
    assert porter_stem(word) == Stemmer.Stemmer("porter").stemWord(word)


@pytest.mark.parametrize(
    ("word", "lucene", "published"),
    [
        ("as", "as", "a"),
        ("is", "is", "i"),
        ("possibly", "possibl", "possibli"),
        ("assembly", "assembl", "assembli"),
        ("immunology", "immunolog", "immunologi"),
        ("pathologies", "patholog", "pathologi"),
    ],
)
def test_porter_departures_are_lucenes(word: str, lucene: str, published: str) -> None:
    assert porter_stem(word) == lucene
    assert Stemmer.Stemmer("porter").stemWord(word) == published


def test_russian_stopwords_and_snowball() -> None:
    russian = get_analyzer("russian")
    text = "Красивые кошки и не бегали, да и книгами столов университетов"
    assert russian.analyze(text) == ["красив", "кошк", "бега", "книг", "стол", "университет"]


def test_standard_keeps_stopwords() -> None:
    assert get_analyzer("standard").analyze("The Quick brown-fox") == ["the", "quick", "brown", "fox"]


def test_analyzers_name_their_opensearch_counterpart_and_version() -> None:
    for name in ("english", "russian", "standard"):
        analyzer = get_analyzer(name)
        assert analyzer.opensearch_analyzer() == name == analyzer.name
        assert analyzer.version.startswith(f"{name}-v")
    assert get_analyzer("english") is get_analyzer("english")


def test_unknown_language_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="english, russian, standard"):
        get_analyzer("french")
