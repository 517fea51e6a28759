"""Analyzers that turn text into the same terms as OpenSearch's built-in `standard`, `english` and `russian`.

The local store scores BM25 on these terms, so they must match what the cluster indexes (SCORING.md §1:
document length counts the tokens left after analysis). The chains are Lucene's:

- standard: StandardTokenizer → lowercase;
- english:  StandardTokenizer → english possessive → lowercase → stop (`_english_`) → Porter stemmer;
- russian:  StandardTokenizer → lowercase → stop (`_russian_`) → Snowball Russian stemmer.

The tokenizer follows Unicode word segmentation (UAX #29) like Lucene's StandardTokenizer: segments that
hold letters, digits, ideographs or emoji become tokens ("can't", "3.14", "1,000", "u.s.a" stay whole),
a run of Thai-like script is one token, and tokens longer than 255 characters are cut into pieces.
Lucene's Porter stemmer is Martin Porter's own implementation, which departs from the published algorithm
(and from Snowball's "porter") in three places, so `porter_stem` reproduces it rather than calling PyStemmer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cache, lru_cache
from importlib import resources

import regex
import Stemmer

from neurank.errors import ConfigError
from neurank.index_spec import ANALYZERS

ANALYSIS_VERSION = 1
"""Bump when any chain below changes the terms it produces: it is part of every index fingerprint."""

MAX_TOKEN_LENGTH = 255
_TERM_CACHE_SIZE = 1 << 18

_APOSTROPHES = "'\u2019\uff07"


# -- tokenizer ---------------------------------------------------------------------------------------------


def _word_pattern() -> str:
    """Lucene's StandardTokenizer grammar (UAX #29 word rules WB4-WB13b) as one regular expression."""
    ext = r"[\p{WB=Extend}\p{WB=Format}\p{WB=ZWJ}]*"
    letter = rf"(?:[\p{{WB=ALetter}}\p{{WB=Hebrew_Letter}}]{ext})"
    digit = rf"(?:[\p{{WB=Numeric}}\uFF10-\uFF19]{ext})"
    katakana = rf"(?:\p{{WB=Katakana}}{ext})"
    connector = rf"(?:\p{{WB=ExtendNumLet}}{ext})"
    mid_letter = rf"(?:[\p{{WB=MidLetter}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{ext})"
    mid_number = rf"(?:[\p{{WB=MidNum}}\p{{WB=MidNumLet}}\p{{WB=Single_Quote}}]{ext})"
    letters = rf"{letter}(?:(?:{connector}*|{mid_letter}){letter})*"
    numbers = rf"{digit}(?:(?:{connector}*|{mid_number}){digit})*"
    core = rf"(?:{katakana}(?:{connector}*{katakana})*|(?:{letters}|{numbers})+)"
    word = rf"{connector}*{core}(?:{connector}+{core})*{connector}*"
    ideograph = rf"[\p{{Script=Han}}\p{{Script=Hiragana}}]{ext}"
    southeast_asian = rf"(?:\p{{Line_Break=Complex_Context}}{ext})+"
    emoji = (
        r"\p{Regional_Indicator}{2}|(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F)"
        r"(?:[\p{Emoji_Modifier}\uFE0F]|\u200D\p{Extended_Pictographic}\uFE0F?)*"
    )
    return f"{word}|{ideograph}|{southeast_asian}|{emoji}"


_TOKEN = regex.compile(_word_pattern())
_ASCII_TOKEN = re.compile(
    r"_*[A-Za-z0-9][A-Za-z0-9_]*(?:(?:(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[,;.'](?=[0-9]))[A-Za-z0-9_]+)*"
)
"""The same grammar restricted to ASCII text, where `re` is several times faster than `regex`."""


def tokenize(text: str) -> list[str]:
    """StandardTokenizer's tokens of `text`, original case kept; tokens over 255 characters are cut."""
    tokens = (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)
    if len(text) <= MAX_TOKEN_LENGTH or max(map(len, tokens), default=0) <= MAX_TOKEN_LENGTH:
        return tokens
    return [
        token[start : start + MAX_TOKEN_LENGTH]
        for token in tokens
        for start in range(0, len(token), MAX_TOKEN_LENGTH)
    ]


def java_lowercase(token: str) -> str:
    """Lowercase one code point at a time like Java's `Character.toLowerCase` (no final sigma, İ → i)."""
    if "\u0130" in token or "\u03a3" in token:
        return "".join("i" if char == "\u0130" else char.lower() for char in token)
    return token.lower()


def strip_possessive(token: str) -> str:
    """Lucene's EnglishPossessiveFilter: drop a trailing 's / ’s / ＇s (either case of s)."""
    if len(token) >= 2 and token[-1] in "sS" and token[-2] in _APOSTROPHES:
        return token[:-2]
    return token


# -- Porter stemmer, as Lucene's PorterStemmer implements it -----------------------------------------------

_STEP3 = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
    ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
    ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
)  # fmt: skip
_STEP4 = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
    ("ness", ""),
)  # fmt: skip
_STEP5 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism",
    "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip


def _shape(word: str) -> str:
    """'c' or 'v' per letter: vowels are a, e, i, o, u, and y after a consonant."""
    shape: list[str] = []
    for char in word:
        if char in "aeiou":
            shape.append("v")
        elif char == "y":
            shape.append("v" if shape and shape[-1] == "c" else "c")
        else:
            shape.append("c")
    return "".join(shape)


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in `stem`."""
    return _shape(stem).count("vc")


def _has_vowel(stem: str) -> bool:
    return "v" in _shape(stem)


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _shape(word)[-1] == "c"


def _ends_cvc(word: str) -> bool:
    """consonant-vowel-consonant at the end, the last not w, x or y (hop → hope, but not snow → snowe)."""
    return len(word) >= 3 and _shape(word)[-3:] == "cvc" and word[-1] not in "wxy"


def _step1(word: str) -> str:
    """Plurals, then -eed / -ed / -ing."""
    if word.endswith("s"):
        if word.endswith(("sses", "ies")):
            word = word[:-2]
        elif not word.endswith("ss"):
            word = word[:-1]
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    suffix = "ed" if word.endswith("ed") else "ing" if word.endswith("ing") else ""
    stem = word[: -len(suffix)] if suffix else ""
    if not suffix or not _has_vowel(stem):
        return word
    if stem.endswith(("at", "bl", "iz")):
        return stem + "e"
    if _ends_double_consonant(stem):
        return stem if stem[-1] in "lsz" else stem[:-1]
    if _measure(stem) == 1 and _ends_cvc(stem):
        return stem + "e"
    return stem


def _replace_first(word: str, rules: tuple[tuple[str, str], ...], min_measure: int) -> str:
    """Apply the first rule whose suffix ends `word`, if what precedes it has m > min_measure."""
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if _measure(stem) > min_measure else word
    return word


def _step5(word: str) -> str:
    """Remove -ant, -ence, … when m > 1; -ion only after s or t."""
    for suffix in _STEP5:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            if suffix == "ion" and not stem.endswith(("s", "t")):
                continue
            return stem if _measure(stem) > 1 else word
    return word


def _step6(word: str) -> str:
    """Drop a final -e (m > 1, or m = 1 not after cvc), then -ll → -l when m > 1."""
    measure = _measure(word)
    if word.endswith("e") and (measure > 1 or (measure == 1 and not _ends_cvc(word[:-1]))):
        word = word[:-1]
    if word.endswith("l") and _ends_double_consonant(word) and measure > 1:
        word = word[:-1]
    return word


def porter_stem(word: str) -> str:
    """Lucene's PorterStemmer on a lowercase word.

    Departures from the published algorithm (and from Snowball's "porter"), kept because OpenSearch has
    them: words of one or two letters are left alone; -bli → -ble replaces -abli → -able; -logi → -log.
    """
    if len(word) <= 2:
        return word
    word = _step1(word)
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    if len(word) > 1:
        word = _replace_first(word, _STEP3, 0)
    word = _replace_first(word, _STEP4, 0)
    if len(word) > 1:
        word = _step5(word)
    return _step6(word)


class _SnowballStemmer:
    """A PyStemmer algorithm with one stemmer per thread (PyStemmer objects are not thread-safe)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._local = threading.local()

    def __call__(self, word: str) -> str:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer(self.algorithm)
        return stemmer.stemWord(word)


# -- analyzers ---------------------------------------------------------------------------------------------


def _stopwords(language: str) -> frozenset[str]:
    text = resources.files("neurank.stores").joinpath("stopwords", f"{language}.txt").read_text("utf-8")
    return frozenset(text.split())


class Analyzer:
    """One analysis chain: `analyze(text)` gives the terms OpenSearch's `opensearch_analyzer()` indexes."""

    def __init__(
        self,
        name: str,
        *,
        version: str,
        stopwords: frozenset[str] = frozenset(),
        stemmer: Callable[[str], str] | None = None,
        possessive: bool = False,
    ) -> None:
        self.name = name
        self.version = version
        self._stopwords = stopwords
        self._stemmer = stemmer
        self._possessive = possessive
        self._term = lru_cache(maxsize=_TERM_CACHE_SIZE)(self.term_of)

    def __repr__(self) -> str:
        return f"Analyzer({self.name!r}, version={self.version!r})"

    def term_of(self, token: str) -> str | None:
        """The indexed term of one token (a word the tokenizer keeps whole), or None when the stop filter removes
        it. Not cached: `analyze` caches the terms of the text it meets; one-off words (spelling variants) would
        only push those out."""
        if self._possessive:
            token = strip_possessive(token)
        term = java_lowercase(token)
        if term in self._stopwords:
            return None
        return self._stemmer(term) if self._stemmer else term

    def analyze(self, text: str) -> list[str]:
        """The terms of `text`, in order, repeats kept: their count is the field length BM25 uses."""
        term_of = self._term
        return [term for token in tokenize(text) if (term := term_of(token)) is not None]

    def opensearch_analyzer(self) -> str:
        """The built-in analyzer to name in an OpenSearch mapping for the same terms."""
        return self.name


def _build(language: str) -> Analyzer:
    version = f"{language}-v{ANALYSIS_VERSION}"
    if language == "standard":
        return Analyzer("standard", version=version)
    if language == "english":
        return Analyzer(
            "english", version=version, stopwords=_stopwords("english"), stemmer=porter_stem, possessive=True
        )
    return Analyzer(
        "russian",
        version=f"{version}-snowball-{Stemmer.version()}",
        stopwords=_stopwords("russian"),
        stemmer=_SnowballStemmer("russian"),
    )


@cache
def get_analyzer(language: str) -> Analyzer:
    """The analyzer for an index's `language`; one shared instance (and term cache) per language."""
    if language not in ANALYZERS:
        raise ConfigError(f"unknown analyzer language {language!r}; choose one of {', '.join(ANALYZERS)}")
    return _build(language)
