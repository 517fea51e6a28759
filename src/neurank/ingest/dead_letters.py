"""Dead letters: documents that could not be indexed, kept in Redis per store and index with the reason.

One entry per document id (the latest reason wins). An entry stays until the document is indexed, whether
by `neurank ingest --retry-dead` or by a later ingest of changed content; it holds the document itself,
so a retry needs no access to the source file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from neurank.ingest.messages import DeadLetter

if TYPE_CHECKING:
    import redis


class DeadLetters:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}:dead"

    def add(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            self.client.hset(self.key, mapping={letter.document.id: json.dumps(letter.to_dict())
                                                for letter in letters})

    def discard(self, ids: Sequence[str]) -> None:
        """Forget the documents among `ids` that were dead: they are indexed now."""
        if ids:
            self.client.hdel(self.key, *ids)

    def get(self, ids: Sequence[str]) -> dict[str, DeadLetter]:
        """The dead letters among `ids`."""
        if not ids:
            return {}
        values = self.client.hmget(self.key, list(ids))
        return {doc_id: DeadLetter.from_dict(json.loads(value))
                for doc_id, value in zip(ids, values, strict=True) if value is not None}

    def __iter__(self) -> Iterator[DeadLetter]:
        for _, value in self.client.hscan_iter(self.key, count=500):
            yield DeadLetter.from_dict(json.loads(value))

    def __len__(self) -> int:
        return int(self.client.hlen(self.key))
