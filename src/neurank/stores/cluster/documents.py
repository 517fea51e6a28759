"""Documents as `_source` for either engine (the fields of `neurank.mappings`), and back.

JSON has no NaN or infinity, and one such number would make the whole `_bulk` body unparseable (a 400 for
every document in the chunk). `document_source` refuses those documents alone, with the reason the field
mapper gives; everything else the cluster checks itself, and reports per item. Token vectors go in an unindexed
`object` (or a `rank_vectors` field) the cluster may not check, so they are checked here as the local store checks
them (dimension, finite values), and a document that kept no token is written without them.

`expansion_terms` (a `keyword` array) holds the document's top terms of the expansion model, highest weight
first, so that Discover shows them and a terms aggregation counts them: Kibana and Dashboards show neither
`rank_features` nor `sparse_vector` values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from neurank.documents import Document
from neurank.index_spec import COLBERT_ROLE, EXPANSION_ROLE, SPARSE_FIELDS
from neurank.mappings.index import CONTENT_FIELD, EMBEDDING_FIELD, EXPANSION_TERMS_FIELD, TOKEN_COUNT_FIELD
from neurank.stores.protocol import EncodedDocument, StoredDocument
from neurank.stores.tokens import BadTokenVectors, check_token_vectors

SOURCE_FIELDS = ("doc_id", "title", "text", "metadata", "source", "content_hash", "models",
                 *SPARSE_FIELDS, EMBEDDING_FIELD, COLBERT_ROLE)
STATE_FIELDS = ("content_hash", "models")


class UnsendableDocument(ValueError):
    """A document that cannot be written as JSON; the message is the reason, naming the field."""


def top_terms(weights: Mapping[str, float], n: int) -> list[str]:
    """The `n` terms of highest weight, highest first (ties by term, so that a re-run writes the same list)."""
    return [term for term, _ in sorted(weights.items(), key=lambda item: (-item[1], item[0]))[:n]]


def document_source(encoded: EncodedDocument, colbert_dimension: int | None = None, *,
                    expansion_terms: int = 0, content: bool = False, unit_dense: bool = False) -> dict[str, Any]:
    """The `_source` of one document, with its top `expansion_terms` expansion terms (0: none), and `content`
    (title and text, the BM25 field) written out where the mapping does not `copy_to` it; raises
    UnsendableDocument for a value JSON cannot carry, token vectors the index (`colbert_dimension`) cannot score,
    or a zero embedding where the similarity needs a direction (`unit_dense`: cosine)."""
    doc = encoded.document
    source: dict[str, Any] = {
        "doc_id": doc.id,
        "title": doc.title,
        "text": doc.text,
        "metadata": doc.metadata,
        "source": doc.source,
        "content_hash": doc.content_hash,
        "models": dict(encoded.models),
    }
    if content:
        source[CONTENT_FIELD] = f"{doc.title}\n{doc.text}" if doc.title else doc.text
    for field, weights in encoded.sparse.items():
        values = {token: float(weight) for token, weight in weights.items()}
        for token, value in values.items():
            if not math.isfinite(value):
                raise UnsendableDocument(
                    f"failed to parse field [{field}] (learned-sparse weights): feature value must be finite, "
                    f"got: {value} for feature [{token}]"
                )
        source[field] = values
        if field == EXPANSION_ROLE and expansion_terms and values:
            source[EXPANSION_TERMS_FIELD] = top_terms(values, expansion_terms)
    if encoded.embedding is not None:
        vector = np.asarray(encoded.embedding, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise UnsendableDocument(
                f"failed to parse field [{EMBEDDING_FIELD}] (dense vector): "
                "vector values cannot be NaN or infinite"
            )
        if unit_dense and not vector.any():
            raise UnsendableDocument(f"failed to parse field [{EMBEDDING_FIELD}] (dense vector): the cosine "
                                     "similarity does not support vectors with zero magnitude")
        source[EMBEDDING_FIELD] = vector.tolist()
    if encoded.token_vectors is not None:
        try:
            tokens = check_token_vectors(encoded.token_vectors, colbert_dimension)
        except BadTokenVectors as exc:
            raise UnsendableDocument(f"failed to parse field [{COLBERT_ROLE}] (token vectors): {exc}") from exc
        if tokens is not None:
            # float32's shortest decimals (a 128-dim row in ~40 % fewer JSON bytes), which read back as the same
            # float32 values; `lateInteractionScore` reads them as floats too
            source[COLBERT_ROLE] = tokens.astype(str).astype(np.float64).tolist()
            source[TOKEN_COUNT_FIELD] = len(tokens)
    return source


def token_vectors(source: Mapping[str, Any]) -> np.ndarray | None:
    """The float32 token vectors of a `_source`, None when it has none."""
    rows = source.get(COLBERT_ROLE)
    return np.asarray(rows, dtype=np.float32) if rows else None


def stored_document(doc_id: str, source: Mapping[str, Any]) -> StoredDocument:
    """A StoredDocument from the `_source` written by `document_source`."""
    document = Document(
        id=doc_id,
        text=source.get("text", ""),
        title=source.get("title") or "",
        metadata=source.get("metadata") or {},
        source=source.get("source"),
    )
    embedding = source.get(EMBEDDING_FIELD)
    return StoredDocument(
        document=document,
        content_hash=source.get("content_hash", ""),
        models=source.get("models") or {},
        sparse={field: source[field] for field in SPARSE_FIELDS if source.get(field)},
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
        token_vectors=token_vectors(source),
    )


def stored_state(source: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(content hash, model fingerprints) from a `_source` limited to STATE_FIELDS."""
    return source.get("content_hash", ""), dict(source.get("models") or {})
