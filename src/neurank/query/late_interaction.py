"""Late interaction (ColBERT) as a rescoring stage between the first stage and the cross-encoder.

Documents are encoded into token vectors once, at ingest; a query is encoded once, and each of the top first-stage
candidates is scored by MaxSim (SCORING.md §7) against its stored token vectors, by the store
(`LateInteractionQuery`). The MaxSim score is combined with the first stage's like the cross-encoder's is
(`neurank.query.rerank.interpolate`, weights calibrated per first stage in the model folder's `rerank.json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurank.query.rerank import Reranker, calibrated
from neurank.stores.protocol import StoredDocument
from neurank.stores.scoring import maxsim, maxsim_alignment

COLBERT_OFF_NOTE = (
    "late interaction is off: no late-interaction model given"
    " (pass --colbert-model DIR, e.g. a folder made by `neurank train colbert`)"
)


class MaxSimScorer:
    """Scores (query, passage) pairs by encoding both sides, for calibration and training evaluation (a search
    scores the stored token vectors instead). A passage that keeps no token scores 0 here."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    @property
    def fingerprint(self) -> str:
        return str(self.encoder.fingerprint)

    def predict(self, query: str, passages: Sequence[str]) -> np.ndarray:
        vectors = self.encoder.encode_queries([query])[0]
        documents = self.encoder.encode_documents(list(passages))
        scores = np.zeros(len(documents), dtype=np.float32)
        kept = [i for i, document in enumerate(documents) if len(document)]
        scores[kept] = maxsim(vectors, [documents[i] for i in kept])
        return scores


def late_interaction_stage(encoder: Any) -> Reranker:
    """The rescoring stage of a late-interaction encoder, with the weights calibrated in its folder."""
    return calibrated(MaxSimScorer(encoder), str(encoder.model))


def alignment(encoder: Any, query_tokens: Sequence[str], query_vectors: np.ndarray,
              stored: StoredDocument) -> list[tuple[str, str, float]]:
    """For each query token (the `[MASK]` padding included, `query_tokens` as `encoder.query_tokens` gives them
    once per search): the document token it matched, and the similarity."""
    if stored.token_vectors is None or not len(stored.token_vectors):
        return []
    document_tokens = encoder.document_tokens(stored.document.passage)
    matched, similarities = maxsim_alignment(query_vectors, stored.token_vectors)
    return [(query_tokens[i] if i < len(query_tokens) else "?",
             document_tokens[j] if j < len(document_tokens) else "?", float(similarity))
            for i, (j, similarity) in enumerate(zip(matched.tolist(), similarities.tolist(), strict=True))]
