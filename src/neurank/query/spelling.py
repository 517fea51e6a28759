"""Query spelling correction from the index's own terms ("did you mean"), before any stage sees the query.

Fuzzy BM25 repairs only the lexical stage of a hybrid: the sparse and dense encoders still read a misspelled word
as unrelated word pieces. So a word the index does not know (its analyzed term is in no document) is replaced by
the variant one edit away (a letter dropped, inserted, replaced, or two adjacent letters swapped: most typing
slips) whose analyzed term is in the most documents: Norvig's corrector with the index's document frequencies as
its language model, or Elasticsearch's `term` suggester in `missing` mode, except that the replacement is a word
and not a stemmed term, so every stage can read it. A word with no such variant stays as typed. Variants with the
same term (`diabets`, `diabetes`) are told apart by the query encoder's tokenizer where there is one: the fewest
word pieces is a word its vocabulary holds whole; then the shortest, then the alphabetical first.

Words are left alone, as word processors leave them, when they are shorter than `min_length`, hold a digit or a
capital after their first letter (acronyms and gene names: `TFRC`, `mTORC1`, `Foxp3`), or are not ASCII (the edit
alphabet is a-z); stop words are never looked up.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from neurank.stores.analysis import Analyzer

_TOKEN = re.compile(r"[^\W_]+")
_ALPHABET = string.ascii_lowercase
DEFAULT_MIN_LENGTH = 4

DocumentFrequencies = Callable[[Collection[str]], Mapping[str, int]]
"""Analyzed `content` terms → how many documents hold each (a store's `document_frequencies` on one index)."""
WordPieces = Callable[[str], int]
"""How many tokens a query encoder's tokenizer makes of a word (`Encoder.pieces`)."""


@dataclass(frozen=True, slots=True)
class Correction:
    """The query the stages search with, and each replaced word."""

    text: str
    changes: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.text, "corrections": [{"word": word, "replacement": replacement}
                                                    for word, replacement in self.changes]}


def one_edit(word: str) -> set[str]:
    """Every string one edit from `word` over a-z: deletions, adjacent swaps, replacements, insertions."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({left + right[1:] for left, right in splits if right}
            | {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
            | {left + char + right[1:] for left, right in splits if right for char in _ALPHABET}
            | {left + char + right for left, right in splits for char in _ALPHABET}) - {word}


class SpellingCorrector:
    """Corrects a query against one index: at most two document-frequency lookups per query (the words, then
    the variants of the unknown ones), each one store call."""

    def __init__(self, analyzer: Analyzer, frequencies: DocumentFrequencies, *, pieces: WordPieces | None = None,
                 min_length: int = DEFAULT_MIN_LENGTH) -> None:
        self._analyzer = analyzer
        self._frequencies = frequencies
        self._pieces = pieces or (lambda _: 0)
        self._min_length = min_length

    def correct(self, text: str) -> Correction:
        words = {word: term for word in dict.fromkeys(_TOKEN.findall(text))
                 if self._eligible(word) and (term := self._analyzer.term_of(word.lower())) is not None}
        known = self._frequencies(set(words.values())) if words else {}
        unknown = [word for word, term in words.items() if known.get(term, 0) == 0]
        if not unknown:
            return Correction(text)
        variants = {word: {variant: term for variant in sorted(one_edit(word.lower()))
                           if (term := self._analyzer.term_of(variant)) is not None} for word in unknown}
        frequency = self._frequencies({term for terms in variants.values() for term in terms.values()})
        replacements: dict[str, str] = {}
        for word, terms in variants.items():
            top = max((frequency.get(term, 0) for term in terms.values()), default=0)
            if top > 0:  # the module docstring's order; `sorted` above makes the last tie alphabetical
                replacements[word] = min((v for v, term in terms.items() if frequency.get(term, 0) == top),
                                         key=lambda v: (self._pieces(v), len(v)))
        corrected = _TOKEN.sub(lambda match: replacements.get(match.group(), match.group()), text)
        return Correction(corrected, tuple((word, replacements[word]) for word in unknown if word in replacements))

    def _eligible(self, word: str) -> bool:
        """ASCII letters only, so the word and its variants are one token each (`Analyzer.term_of`)."""
        return (len(word) >= self._min_length and word.isascii() and word.isalpha()
                and not any(char.isupper() for char in word[1:]))

