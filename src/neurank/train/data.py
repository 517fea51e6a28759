"""Training examples from BEIR qrels: the train/dev split, one example per query, batches drawn by step.

Every draw is a pure function of (seed, step): the epoch order, which positive a query shows, and which of
its mined negatives come along. A run resumed from a checkpoint therefore sees exactly the batches an
uninterrupted run would have seen, without saving any sampler state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from neurank.config import Settings
from neurank.errors import ConfigError, InputError
from neurank.eval.datasets import Qrels, available_splits, load_qrels, load_queries, read_passages
from neurank.query.rerank import DEFAULT_RERANK_DEPTH
from neurank.retrieval import ScoredIds
from neurank.train.config import SplitConfig, TrainConfig
from neurank.train.first_stage import first_stage_runs
from neurank.train.mining import mine_hard_negatives


@dataclass(frozen=True, slots=True)
class Example:
    """One training query: its judged positives and a pool of negatives, best-ranked first."""

    query_id: str
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """What one query contributes to a batch: `doc_ids[0]` is the positive, the rest are negatives."""

    query_id: str
    query: str
    doc_ids: tuple[str, ...]
    passages: tuple[str, ...]
    judged_positive: frozenset[str] = frozenset()
    """Every document judged relevant to the query: in-batch losses must not treat these as its negatives."""


@dataclass(frozen=True, slots=True)
class TrainingData:
    """A dataset ready to train on: passages, queries, train/dev qrels, first-stage runs and examples."""

    corpus: dict[str, str]
    """Document id → passage (title, then text: what the encoders read)."""
    queries: dict[str, str]
    train: Qrels
    dev: Qrels
    runs: dict[str, ScoredIds]
    """First-stage rankings of the train and dev queries (mining and the dev metric)."""
    examples: list[Example]
    seed: int
    first_stage: str = "bm25"
    """What ranked `runs` (`bm25`, `dense` or `hybrid`)."""

    def batch(self, step: int, *, batch_size: int, n_negatives: int) -> list[Group]:
        return batch_at(self.examples, self.corpus, step=step, batch_size=batch_size, n_negatives=n_negatives,
                        seed=self.seed)


def load_training_data(dataset: Path, settings: Settings, config: TrainConfig) -> TrainingData:
    """Read the dataset, split train/dev, rank every train and dev query first-stage, mine the negatives."""
    train, dev = training_split(dataset, config)
    queries = load_queries(dataset)
    missing = sorted((set(train) | set(dev)) - set(queries))
    if missing:
        raise InputError(f"{len(missing)} judged query ids are not in queries.jsonl, e.g. {missing[:5]}",
                         source=str(dataset))
    corpus = read_passages(dataset)
    wanted = {query_id: queries[query_id] for query_id in (*train, *dev)}
    runs = first_stage_runs(dataset, wanted, settings, source=config.negatives_from,
                            depth=max(config.range_max, config.dev_depth, DEFAULT_RERANK_DEPTH))
    examples = build_examples(train, queries, runs, sorted(corpus), pool=config.n_negatives,
                              range_min=config.range_min, range_max=config.range_max, seed=config.seed)
    return TrainingData(corpus, queries, train, dev, runs, examples, config.seed, config.negatives_from)


def training_split(dataset: Path, config: SplitConfig) -> tuple[Qrels, Qrels]:
    """Train qrels and the (sampled) dev qrels that training scores; calibration reuses the same dev queries.

    The evaluation split's queries never train, nor do the test split's when the final evaluation is off.
    """
    held_out = config.eval_split or ("test" if "test" in available_splits(dataset) else None)
    exclude = load_qrels(dataset, held_out) if held_out else {}
    train, dev = split_queries(dataset, train_split=config.train_split, dev_split=config.dev_split,
                               dev_fraction=config.dev_fraction, seed=config.seed, exclude=list(exclude))
    return train, subsample(dev, config.dev_queries, config.seed)


def split_queries(directory: Path, *, train_split: str, dev_split: str, dev_fraction: float, seed: int,
                  exclude: Sequence[str] = ()) -> tuple[Qrels, Qrels]:
    """Train and dev qrels: the dataset's own dev split when it has one, else a seeded carve-out of train.

    Queries judged in `exclude` (the evaluation split) never train: BEIR keeps all splits' queries in one
    file, and a query shared with test would leak it.
    """
    train = _without(load_qrels(directory, train_split), set(exclude))
    if dev_split in available_splits(directory):
        return train, _without(load_qrels(directory, dev_split), set(exclude) | set(train))
    if not 0 < dev_fraction < 1:
        raise ConfigError(f"dev_fraction must be in (0, 1) to carve a dev split out of {train_split!r}, "
                          f"got {dev_fraction}")
    return carve_dev(train, dev_fraction, seed)


def carve_dev(qrels: Qrels, fraction: float, seed: int) -> tuple[Qrels, Qrels]:
    """Move a seeded `fraction` of the queries (at least one) from `qrels` into a dev split."""
    ids = sorted(qrels)
    if len(ids) < 2:
        raise InputError(f"cannot carve a dev split out of {len(ids)} judged queries; give a dev split")
    random.Random(f"dev:{seed}").shuffle(ids)
    dev_ids = set(ids[: max(1, round(len(ids) * fraction))])
    return ({q: j for q, j in qrels.items() if q not in dev_ids}, {q: j for q, j in qrels.items() if q in dev_ids})


def subsample(qrels: Qrels, limit: int | None, seed: int) -> Qrels:
    """At most `limit` queries of `qrels`, chosen with `seed` (dev evaluation costs one pass per query)."""
    if limit is None or len(qrels) <= limit:
        return qrels
    keep = set(random.Random(f"subsample:{seed}").sample(sorted(qrels), limit))
    return {q: j for q, j in qrels.items() if q in keep}


def build_examples(qrels: Qrels, queries: Mapping[str, str], run: Mapping[str, ScoredIds],
                   corpus_ids: Sequence[str], *, pool: int, range_min: int, range_max: int,
                   seed: int) -> list[Example]:
    """One example per query with a positive: negatives mined from `run`, topped up at random to `pool`.

    Mining skips the first `range_min` ranks (likely unjudged positives) and stops at `range_max`; when a
    query has fewer candidates than `pool`, random corpus documents (never from those first ranks) fill in
    so every group has the same size. No pool ever holds a document judged positive for its query.
    """
    mined = mine_hard_negatives(run, qrels, n_negatives=range_max, range_min=range_min, range_max=range_max)
    known = set(corpus_ids)
    examples = []
    for query_id in sorted(qrels):
        positives = tuple(sorted(doc for doc, label in qrels[query_id].items() if label > 0 and doc in known))
        if not positives or query_id not in queries:
            continue
        negatives = list(mined.get(query_id, []))
        if len(negatives) < pool:
            guarded = {doc for doc, _ in run.get(query_id, [])[:range_min]}
            negatives += _random_negatives(corpus_ids, {*positives, *negatives, *guarded}, pool - len(negatives),
                                           random.Random(f"fill:{seed}:{query_id}"))
        examples.append(Example(query_id, queries[query_id], positives, tuple(negatives)))
    if not examples:
        raise InputError("no training query has a judged positive; check the train qrels")
    return examples


def batch_at(examples: Sequence[Example], corpus: Mapping[str, str], *, step: int, batch_size: int,
             n_negatives: int, seed: int) -> list[Group]:
    """The groups of training step `step`: examples in a seeded order per epoch, each drawn for that epoch."""
    groups = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, len(examples))
        example = examples[_epoch_order(len(examples), seed, epoch)[offset]]
        rng = random.Random(f"draw:{seed}:{epoch}:{example.query_id}")
        positive = rng.choice(example.positives)
        negatives = rng.sample(example.negatives, min(n_negatives, len(example.negatives)))
        doc_ids = (positive, *negatives)
        groups.append(Group(example.query_id, example.query, doc_ids, tuple(corpus[doc] for doc in doc_ids),
                            frozenset(example.positives)))
    return groups


@lru_cache(maxsize=4)
def _epoch_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(size))
    random.Random(f"order:{seed}:{epoch}").shuffle(order)
    return tuple(order)


def _random_negatives(corpus_ids: Sequence[str], taken: set[str], count: int, rng: random.Random) -> list[str]:
    available = [doc for doc in corpus_ids if doc not in taken]
    return rng.sample(available, min(count, len(available)))


def _without(qrels: Qrels, excluded: set[str]) -> Qrels:
    return {query_id: judged for query_id, judged in qrels.items() if query_id not in excluded}
