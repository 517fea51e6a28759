"""Metric-learning diagnostics: does a model put each query nearer its positives than its negatives, do its
embeddings cluster by query, and how much of what is relevant does a ranking find?

Definitions (a document is relevant to a query when its qrels label is > 0, as in ir-measures):

- **separation accuracy**: over every (query q, relevant p, negative n) triple, the share where the model
  scores s(q, p) > s(q, n), a tie counting one half; pooled over all triples (the AUC of positives against
  negatives). 0.5 is a random scorer, 1.0 a perfect one. Reported twice: with *mined* negatives (the
  first stage's best-ranked unjudged documents after its top `skip` ranks: the ones a model must learn to
  push down) and with *random* corpus documents (the easy case). It needs only scores, so it applies to
  every model: bi-encoders, cross-encoders, learned sparse, late interaction, BM25.
- **silhouette**: the silhouette coefficient (Rousseeuw 1987, `sklearn.metrics.silhouette_score`, cosine
  distance) of the points {query vector, its relevant documents' vectors}, one cluster per query. In
  [-1, 1]; high when each query sits with its own positives and apart from the others'. It needs one vector
  per text in a shared space: dense bi-encoders only (a cross-encoder scores pairs and has none; a sparse
  model's vectors are term weights over a vocabulary, not an embedding space).
- **Recall@N** (macro): the mean over judged queries of |relevant ∩ top N| / |relevant| (ir-measures `R@N`; a
  query the run misses counts 0).
- **micro-recall@N**: Σ_q |relevant_q ∩ top N_q| / Σ_q |relevant_q| over the same judged queries: relevant
  documents retrieved over all queries / relevant documents over all queries, so every relevant document
  weighs the same and queries judging many documents (NFCorpus) weigh more than in the macro mean.

Top N is taken in the order `evaluate` scores: score descending, ties by document id ascending.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from neurank.eval.metrics import evaluate, ranked
from neurank.retrieval import ScoredIds

Scorer = Callable[[str, Sequence[str]], np.ndarray]
"""(query, passages) → one relevance score per passage, higher is better."""
RECALL_CUTOFFS = (10, 100)
MINED_NEGATIVES = 5
"""Mined and random negatives per query."""
MINED_SKIP = 2
"""First-stage ranks skipped before mining (they hold most unjudged positives, as in training)."""


class Embedder(Protocol):
    """A model with one vector per text (a dense encoder, or a bi-encoder in training)."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


def separation_accuracy(groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Share of (positive, negative) score pairs ordered right, ties one half; `groups` holds one (positive
    scores, negative scores) pair of arrays per query. None when no query has both."""
    wins, pairs = 0.0, 0
    for positives, negatives in groups:
        difference = np.asarray(positives, np.float64)[:, None] - np.asarray(negatives, np.float64)[None, :]
        wins += float((difference > 0).sum()) + 0.5 * float((difference == 0).sum())
        pairs += difference.size
    return wins / pairs if pairs else None


def silhouette(vectors: np.ndarray, labels: Sequence[str]) -> float | None:
    """Silhouette coefficient (cosine distance) of `vectors` clustered by `labels`; None when it is undefined
    (fewer than 2 clusters, or as many clusters as points)."""
    from sklearn.metrics import silhouette_score

    clusters = len(set(labels))
    if not 2 <= clusters < len(labels):
        return None
    return float(silhouette_score(np.asarray(vectors, np.float64), list(labels), metric="cosine"))


def micro_recall(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], n: int) -> float:
    """Relevant documents in the top `n` over all judged queries / relevant documents over all judged queries."""
    found = total = 0
    for query_id, judged in qrels.items():
        relevant = {doc for doc, label in judged.items() if label > 0}
        total += len(relevant)
        found += len(relevant.intersection(doc for doc, _ in ranked(run.get(query_id, {}))[:n]))
    return found / total if total else 0.0


def recall_metrics(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                   cutoffs: Sequence[int] = RECALL_CUTOFFS) -> dict[str, float]:
    """`recall@N` (macro, ir-measures) and `micro_recall@N` for each cutoff."""
    macro = evaluate(qrels, run, tuple(f"R@{n}" for n in cutoffs))
    return {**macro, **{f"micro_recall@{n}": micro_recall(qrels, run, n) for n in cutoffs}}


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """A model's diagnostics on one set of judged queries; a diagnostic that does not apply is None, and
    `not_applicable` says why."""

    queries: int
    separation_mined: float | None
    separation_random: float | None
    silhouette: float | None
    recall: dict[str, float] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "separation_mined": self.separation_mined,
                "separation_random": self.separation_random, "silhouette": self.silhouette, **self.recall,
                "not_applicable": self.not_applicable}

    def flat(self) -> dict[str, float]:
        """The diagnostics that apply, as numbers (a training history entry)."""
        return {key: value for key, value in self.to_dict().items()
                if key not in ("queries", "not_applicable") and value is not None}


NO_EMBEDDINGS = "the model has no embedding space (one vector per text): silhouette needs one"


def diagnose(score: Scorer, qrels: Mapping[str, Mapping[str, int]], queries: Mapping[str, str],
             corpus: Mapping[str, str], first_stage: Mapping[str, ScoredIds], *, embedder: Embedder | None = None,
             why_no_embeddings: str = NO_EMBEDDINGS, run: Mapping[str, Mapping[str, float]] | None = None,
             why_no_run: str = "no ranking was given", cutoffs: Sequence[int] = RECALL_CUTOFFS,
             negatives: int = MINED_NEGATIVES, skip: int = MINED_SKIP, seed: int = 0) -> Diagnostics:
    """Every diagnostic of `score` (and `embedder`) on the judged queries of `qrels` present in `queries`.

    Mined negatives are the `negatives` best-ranked documents of `first_stage` after its top `skip` ranks (never
    a relevant one); random negatives are drawn from the rest of `corpus` per query with a generator seeded by
    (`seed`, query id). Recall comes from `run` (the model's ranking), when given.
    """
    judged = {qid: {doc for doc, label in docs.items() if label > 0 and doc in corpus}
              for qid, docs in qrels.items() if qid in queries}
    judged = {qid: relevant for qid, relevant in judged.items() if relevant}
    ids = sorted(corpus)
    mined_groups, random_groups = [], []
    for qid, relevant in judged.items():
        mined = [doc for doc, _ in first_stage.get(qid, [])[skip:] if doc not in relevant][:negatives]
        taken = relevant | set(mined)
        pool = random.Random(f"{seed}:{qid}").sample(ids, min(len(ids), negatives + len(taken)))
        drawn = [doc for doc in pool if doc not in taken][:negatives]
        positives = sorted(relevant)
        scores = np.asarray(score(queries[qid], [corpus[doc] for doc in [*positives, *mined, *drawn]]))
        split = (len(positives), len(positives) + len(mined))
        mined_groups.append((scores[: split[0]], scores[split[0]: split[1]]))
        random_groups.append((scores[: split[0]], scores[split[1]:]))
    not_applicable: dict[str, str] = {}
    cohesion = None
    if embedder is None:
        not_applicable["silhouette"] = why_no_embeddings
    else:
        cohesion = _silhouette_of(embedder, judged, queries, corpus)
    recall = {} if run is None else recall_metrics({qid: qrels[qid] for qid in judged}, run, cutoffs)
    if run is None:
        not_applicable["recall"] = why_no_run
    return Diagnostics(len(judged), separation_accuracy(mined_groups), separation_accuracy(random_groups), cohesion,
                       recall, not_applicable)


def _silhouette_of(embedder: Embedder, judged: Mapping[str, set[str]], queries: Mapping[str, str],
                   corpus: Mapping[str, str]) -> float | None:
    """Each query's vector and its relevant documents' vectors labelled by the query."""
    query_ids = list(judged)
    pairs = [(qid, doc) for qid in query_ids for doc in sorted(judged[qid])]
    if not query_ids:
        return None
    query_vectors = np.asarray(embedder.encode_queries([queries[qid] for qid in query_ids]))
    document_vectors = np.asarray(embedder.encode_documents([corpus[doc] for _, doc in pairs]))
    vectors = np.concatenate([query_vectors, document_vectors])
    return silhouette(vectors, [*query_ids, *(qid for qid, _ in pairs)])
