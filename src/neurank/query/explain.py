"""Why a hit scored: the BM25 terms that matched, the learned-sparse tokens that contributed most, late
interaction's token matches, under learned fusion the features the model scored, and the pairwise model's
preferences against the other reordered hits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neurank.query.learned_fusion import LearnedHit
from neurank.stores.protocol import Store, StoredDocument
from neurank.stores.scoring import decode_rank_feature


@dataclass(slots=True)
class Explanation:
    bm25_terms: list[tuple[str, float]] = field(default_factory=list)
    """(analyzed term, BM25 contribution), largest first."""
    sparse_tokens: list[tuple[str, float, float, float]] = field(default_factory=list)
    """(token, query weight, stored document weight, contribution = their product), largest first."""
    colbert: list[tuple[str, str, float]] = field(default_factory=list)
    """Late interaction, one per query token in order: (query token, document token it matched, similarity)."""
    learned: LearnedHit | None = None
    """Under learned fusion: the model's score and each feature it scored the hit on (None: missing from a list)."""
    duo: list[tuple[str, float]] = field(default_factory=list)
    """The duo stage: (other reordered hit, P(this hit more relevant than it)), in the other hits' prior order."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "bm25_terms": [{"term": t, "score": s} for t, s in self.bm25_terms],
            "sparse_tokens": [{"token": t, "query_weight": q, "doc_weight": d, "score": s}
                              for t, q, d, s in self.sparse_tokens],
            "colbert": [{"query_token": q, "document_token": d, "similarity": s} for q, d, s in self.colbert],
            **({"learned": {"score": self.learned.score, "features": self.learned.features}}
               if self.learned is not None else {}),
            "duo": [{"other": other, "probability": p} for other, p in self.duo],
        }

    def render(self) -> str:
        bm25 = ", ".join(f"{t} {s:.2f}" for t, s in self.bm25_terms) or "no term matched"
        sparse = ", ".join(f"{t} {s:.2f}" for t, _, _, s in self.sparse_tokens) or "no token matched"
        line = f"BM25: {bm25} | sparse: {sparse}"
        if self.colbert:
            words = [(q, d, s) for q, d, s in self.colbert if not (q.startswith("[") and q.endswith("]"))]
            line += " | colbert: " + ", ".join(f"{q}→{d} {s:.2f}" for q, d, s in words)
        if self.learned is not None:
            line += f" | learned fusion {self.learned.score:.4f} from " + ", ".join(
                f"{name} {'—' if value is None else format(value, '.4g')}"
                for name, value in self.learned.features.items())
        if self.duo:
            wins = sum(p > 0.5 for _, p in self.duo)
            line += f" | duo: preferred to {wins} of {len(self.duo)} (" + ", ".join(
                f"{other} {p:.2f}" for other, p in self.duo) + ")"
        return line


def sparse_contributions(query_tokens: Mapping[str, float], doc_tokens: Mapping[str, float],
                         top: int) -> list[tuple[str, float, float, float]]:
    """neural_sparse scores Σ w_q · decode(S_d): the same quantized document weights the store scores with."""
    rows = []
    for token in query_tokens.keys() & doc_tokens.keys():
        stored = float(decode_rank_feature(doc_tokens[token]))
        rows.append((token, query_tokens[token], stored, query_tokens[token] * stored))
    rows.sort(key=lambda row: -row[3])
    return rows[:top]


def explain_hit(store: Store, index: str, query: str, doc_id: str, stored: StoredDocument | None,
                query_tokens: Mapping[str, float], colbert: list[tuple[str, str, float]] | None = None,
                duo: list[tuple[str, float]] | None = None, top: int = 5) -> Explanation:
    """The BM25 terms (asked of the store) and the SPLADE tokens (from the stored weights) behind one hit, with
    the late-interaction alignment and the pairwise preferences when those stages scored it."""
    terms = sorted(store.explain_bm25(index, query, doc_id).items(), key=lambda item: -item[1])[:top]
    doc_tokens = dict(stored.sparse.get("splade", {})) if stored else {}
    return Explanation(terms, sparse_contributions(query_tokens, doc_tokens, top), colbert or [], duo=duo or [])
