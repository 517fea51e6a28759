"""Tokenize with truncation on record, and cut batches by a padded-token budget.

Sorting by length before batching keeps padding low; the batches carry the original positions so the
encoders can put results back in input order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Tokenized:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    truncated: list[bool]
    """True where the text was longer than `max_length` tokens and was cut."""


@dataclass(frozen=True, slots=True)
class Batch:
    positions: list[int]
    """Where each row came from in the input."""
    inputs: dict[str, np.ndarray]
    """input_ids, attention_mask and token_type_ids, int64, (rows, padded length)."""


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int,
             pairs: Sequence[str] | None = None) -> Tokenized:
    """Tokenize `texts` (or `texts` × `pairs` as sentence pairs), cut at `max_length`, recording cuts."""
    encoded = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                        max_length=max_length, return_token_type_ids=True, return_attention_mask=False)
    ids: list[list[int]] = encoded["input_ids"]
    type_ids: list[list[int]] = encoded["token_type_ids"]
    if encoded.encodings is not None:
        truncated = [bool(encoding.overflowing) for encoding in encoded.encodings]
    else:
        full = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=False,
                         return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        truncated = [len(row) > max_length for row in full]
    return Tokenized(ids, type_ids, truncated)


def token_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Positions grouped longest first so that rows × longest row ≤ budget (one row at least per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for position in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(position)
        else:
            batches.append([position])
    return batches


def padded_batches(tokenized: Tokenized, budget: int, pad_id: int) -> Iterator[Batch]:
    """Yield the batches of `token_batches` as padded int64 arrays."""
    lengths = [len(row) for row in tokenized.input_ids]
    for positions in token_batches(lengths, budget):
        width = lengths[positions[0]]
        input_ids = np.full((len(positions), width), pad_id, dtype=np.int64)
        token_type_ids = np.zeros((len(positions), width), dtype=np.int64)
        attention_mask = np.zeros((len(positions), width), dtype=np.int64)
        for row, position in enumerate(positions):
            size = lengths[position]
            input_ids[row, :size] = tokenized.input_ids[position]
            token_type_ids[row, :size] = tokenized.token_type_ids[position]
            attention_mask[row, :size] = 1
        yield Batch(positions, {"input_ids": input_ids, "attention_mask": attention_mask,
                                "token_type_ids": token_type_ids})


def tokenize_triples(tokenizer: Any, query: str, firsts: Sequence[str], seconds: Sequence[str], max_length: int,
                     query_length: int) -> Tokenized:
    """`[CLS] query [SEP] first [SEP] second [SEP]` per (first, second) pair, for a pairwise (duoBERT) model.

    The query keeps at most `query_length` tokens; the two passages share what is left of `max_length`
    equally (a shorter one lends its rest to the other), so the second passage is never cut away for the
    first. Token types: 0 for `[CLS] query [SEP]`, 1 for both passages and their separators (BERT's pair
    layout, extended). Each distinct passage is tokenized once.
    """
    if len(firsts) != len(seconds):
        raise ValueError(f"{len(firsts)} first passages but {len(seconds)} second ones")
    distinct = list(dict.fromkeys([query, *firsts, *seconds]))
    # Nothing longer than `max_length` can fit: cutting there first keeps the cut detectable and saves work.
    pieces = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False, truncation=True, max_length=max_length,
                                          return_attention_mask=False, return_token_type_ids=False)["input_ids"],
                      strict=True))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    question = pieces[query][:query_length]
    room = max(max_length - len(question) - 4, 0)
    ids, types, truncated = [], [], []
    for first, second in zip(firsts, seconds, strict=True):
        a, b = pieces[first], pieces[second]
        keep_a = min(len(a), max(room // 2, room - len(b)))
        keep_b = min(len(b), room - keep_a)
        head = [cls, *question, sep]
        tail = [*a[:keep_a], sep, *b[:keep_b], sep]
        ids.append(head + tail)
        types.append([0] * len(head) + [1] * len(tail))
        truncated.append(len(pieces[query]) > len(question) or keep_a < len(a) or keep_b < len(b))
    return Tokenized(ids, types, truncated)
