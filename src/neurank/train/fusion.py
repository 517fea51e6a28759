"""`neurank train fusion`: a LambdaMART ranker (LightGBM `lambdarank`) that fuses the stages of a plan.

Each train and dev query runs the plan's stages once through `Searcher.learned_lists`, the code path of a
search with learned fusion, so the features a model trains on are those it will see. Labels are the graded
qrels (unjudged candidates count 0); each query is one LightGBM group. Each size in `leaves` boosts until
LightGBM's dev NDCG@10 stops rising; then every `CHOICE_STEP`-th iteration count is scored on the dev queries
as `neurank eval` scores a run (ir-measures, every judged query counts, ties broken by id), and the size and
count that rank them best are kept. LightGBM's own NDCG differs from it (a query with no relevant candidate
counts 1, ties keep their input order), enough to prefer a one-tree model whose few distinct scores tie.
The model is then judged through `neurank eval`'s path: dev (and, unless turned off, the evaluation split)
ranked by the learned fusion and by the default fusion of the same stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurank.config import Settings
from neurank.errors import ConfigError, InputError
from neurank.eval.datasets import Qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.eval.runner import evaluate_modes, run_mode
from neurank.query.learned_fusion import CONFIG_FILE, MODEL_FILE, LearnedFusion, feature_matrix, feature_names
from neurank.query.plan import RetrievalPlan
from neurank.query.rerank import Reranker
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.retrieval import DEFAULT_HYBRID_FUSION, check_size
from neurank.train.config import SplitConfig
from neurank.train.data import subsample, training_split

if TYPE_CHECKING:
    import lightgbm

REPORT_FILE = "training.json"
DEV_MEASURE = "nDCG@10"
BASELINE = DEFAULT_HYBRID_FUSION.technique
"""What the learned fusion is compared with: the default fusion (z_score, arithmetic mean) of the same stages."""
CURVE_POINTS = (1, 10, 25, 50, 100, 200, 400, 800)
"""Iteration counts whose dev nDCG@10 the report lists (with the chosen one)."""
CHOICE_STEP = 5
"""Iteration counts scored on dev when choosing: 1, then every CHOICE_STEP-th, and LightGBM's best."""


@dataclass(frozen=True, slots=True)
class FusionConfig(SplitConfig):
    """What a learned fusion trains on and how; defaults suit SciFact- and NFCorpus-sized collections."""

    mode: str = "hybrid"
    """The first stages (and rescoring stages) whose scores are features, as `neurank eval --modes` names them."""
    depth: int = 100
    """Hits per first stage; the candidates are their union."""
    train_queries: int | None = None
    """At most this many train queries (a seeded sample); None: all."""
    leaves: tuple[int, ...] = (7, 15, 31)
    """Tree sizes tried; the dev queries choose one."""
    learning_rate: float = 0.05
    rounds: int = 1000
    patience: int = 100
    """Boosting rounds without a dev NDCG@10 gain before a size stops."""
    min_data_in_leaf: int = 20
    threads: int | None = None

    def __post_init__(self) -> None:
        SplitConfig.__post_init__(self)
        check_size("depth", self.depth)
        for name in ("rounds", "patience", "min_data_in_leaf"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.leaves or any(leaves < 2 for leaves in self.leaves):
            raise ConfigError(f"leaves must be tree sizes >= 2, got {list(self.leaves)}")
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        for name in ("train_queries", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (or unset), got {getattr(self, name)}")


@dataclass(slots=True)
class Groups:
    """The queries of one split as LightGBM sees them: feature rows, labels, and rows per query."""

    query_ids: list[str]
    ids: list[list[str]]
    """Each query's candidates, in the order of its rows."""
    features: np.ndarray
    labels: np.ndarray
    sizes: list[int]
    positives: int
    """Candidates judged relevant: what the ranker can lift."""


@dataclass(slots=True)
class FusionReport:
    dataset: str
    out: Path
    mode: str
    lists: tuple[str, ...]
    train_queries: int
    dev_queries: int
    candidates: int
    tried: list[dict[str, Any]]
    """Per tree size: LightGBM's best iteration and dev NDCG@10, and the iteration count chosen by dev nDCG@10."""
    chosen: dict[str, Any]
    curve: dict[int, float]
    """Dev nDCG@10 of the chosen size after each of `CURVE_POINTS` iterations and the chosen count."""
    importances: dict[str, float]
    """Feature → total gain of its splits in the kept model, largest first."""
    dev: dict[str, float]
    """Dev nDCG@10 through the search path: learned fusion, and BASELINE of the same stages."""
    evaluation: dict[str, dict[str, Any]] | None
    eval_split: str | None
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["out"] = str(self.out)
        payload["lists"] = list(self.lists)
        payload["seconds"] = round(self.seconds, 1)
        return {"kind": "fusion", **payload}


def train_fusion(dataset: Path, out: Path, settings: Settings, config: FusionConfig, *, target: SearchTarget,
                 reranker: Reranker | None = None, say: Callable[[str], None] | None = None,
                 on_query: Callable[[], None] | None = None) -> FusionReport:
    """Train a learned fusion of `config.mode` on `dataset`, searched in `target`; write it to `out`.

    `out` receives `model.txt`, `fusion.json` and `training.json`. `on_query` is called once per query searched.
    """
    tell = say or (lambda message: None)
    started = time.perf_counter()
    dataset, out = Path(dataset), Path(out)
    searcher = target.searcher(reranker)
    plan = searcher.plan(config.mode, k=config.depth, depth=config.depth, fusion=DEFAULT_HYBRID_FUSION,
                         implied=False)
    train, dev = training_split(dataset, config)
    train = subsample(train, config.train_queries, config.seed)
    if not dev:
        raise InputError(f"{dataset}: no dev query to stop and choose on; give a {config.dev_split} split")
    queries = load_queries(dataset)
    tell(f"searching {len(train)} train and {len(dev)} dev queries of {dataset.name} ({'+'.join(plan.scored_lists)}, "
         f"top {config.depth} per stage)")
    train_groups = gather(searcher, plan, queries, train, on_query)
    dev_groups = gather(searcher, plan, queries, dev, on_query)
    names = list(feature_names(plan.scored_lists))
    tried: list[dict[str, Any]] = []
    boosters = {}
    for leaves in config.leaves:
        booster, history = fit(train_groups, dev_groups, names, config, leaves)
        counts = sorted({1, booster.best_iteration, *range(CHOICE_STEP, len(history) + 1, CHOICE_STEP),
                         *(n for n in CURVE_POINTS if n <= len(history))})
        curve = dev_curve(booster, counts, dev_groups, dev)
        iterations = max(curve, key=lambda n: (curve[n], -n))
        boosters[leaves] = (booster, curve)
        tried.append({"leaves": leaves, "iterations": iterations, "dev_ndcg@10": curve[iterations],
                      "lightgbm_best_iteration": booster.best_iteration,
                      "lightgbm_dev_ndcg@10": history[booster.best_iteration - 1]})
        tell(f"{leaves} leaves: dev nDCG@10 {curve[iterations]:.4f} after {iterations} iterations (LightGBM's "
             f"NDCG@10 {tried[-1]['lightgbm_dev_ndcg@10']:.4f} after {booster.best_iteration})")
    best = max(tried, key=lambda row: (row["dev_ndcg@10"], -row["leaves"]))
    booster, curve = boosters[best["leaves"]]
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE), num_iteration=best["iterations"])
    _write_config(out, plan, config, searcher.fingerprints(plan), best)
    learned = LearnedFusion.load(out)
    learned_plan = searcher.plan(config.mode, k=config.depth, depth=config.depth, fusion=learned, implied=False)
    dev_scores = {name: _ndcg(searcher, candidate, queries, dev)
                  for name, candidate in (("learned", learned_plan), (BASELINE, plan))}
    evaluation = None
    if config.eval_split:
        tell(f"final evaluation on {dataset.name} ({config.eval_split})")
        evaluation = {name: evaluate_modes(dataset, [config.mode], target, settings, split=config.eval_split,
                                           fusion=fusion, reranker=reranker, depth=config.depth,
                                           on_query=on_query)[config.mode].to_dict()
                      for name, fusion in (("learned", learned), (BASELINE, DEFAULT_HYBRID_FUSION))}
    gains = booster.feature_importance(importance_type="gain", iteration=best["iterations"])
    report = FusionReport(
        dataset.name, out, config.mode, plan.scored_lists, len(train_groups.sizes), len(dev_groups.sizes),
        len(train_groups.labels), tried, best,
        {n: value for n, value in curve.items() if n in CURVE_POINTS or n == best["iterations"]},
        dict(sorted(zip(names, map(float, gains), strict=True), key=lambda item: -item[1])),
        dev_scores, evaluation, config.eval_split, time.perf_counter() - started, asdict(config))
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def gather(searcher: Searcher, plan: RetrievalPlan, queries: Mapping[str, str], qrels: Qrels,
           on_query: Callable[[], None] | None = None) -> Groups:
    """Search every judged query once; its candidates become one group, labelled by the qrels (unjudged: 0)."""
    query_ids: list[str] = []
    candidate_ids: list[list[str]] = []
    matrices, labels, sizes = [], [], []
    for query_id in sorted(qrels):
        if query_id not in queries:
            raise InputError(f"judged query {query_id!r} is not in queries.jsonl")
        ids, lists = searcher.learned_lists(queries[query_id], plan)
        if on_query:
            on_query()
        if not ids:
            continue
        query_ids.append(query_id)
        candidate_ids.append(ids)
        matrices.append(feature_matrix(ids, lists, queries[query_id]))
        labels.append(np.array([max(0, qrels[query_id].get(doc_id, 0)) for doc_id in ids], dtype=np.int32))
        sizes.append(len(ids))
    if not sizes:
        raise InputError("no judged query found any candidate; check the dataset and the index")
    all_labels = np.concatenate(labels)
    return Groups(query_ids, candidate_ids, np.vstack(matrices), all_labels, sizes, int((all_labels > 0).sum()))


def fit(train: Groups, dev: Groups, names: Sequence[str], config: FusionConfig,
        leaves: int) -> tuple[lightgbm.Booster, list[float]]:
    """One LambdaMART of `leaves`-leaf trees, early-stopped on dev NDCG@10; (model, dev NDCG@10 per iteration)."""
    import lightgbm

    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": config.learning_rate,
              "num_leaves": leaves, "min_data_in_leaf": config.min_data_in_leaf, "seed": config.seed,
              "deterministic": True, "force_row_wise": True, "num_threads": config.threads or 0, "verbosity": -1}
    train_set = lightgbm.Dataset(train.features, train.labels, group=train.sizes, feature_name=list(names),
                                 free_raw_data=False)
    dev_set = lightgbm.Dataset(dev.features, dev.labels, group=dev.sizes, reference=train_set)
    recorded: dict[str, Any] = {}
    booster = lightgbm.train(params, train_set, num_boost_round=config.rounds, valid_sets=[dev_set],
                             valid_names=["dev"], callbacks=[lightgbm.early_stopping(config.patience, verbose=False),
                                                             lightgbm.record_evaluation(recorded)])
    return booster, [float(value) for value in recorded["dev"]["ndcg@10"]]


def dev_curve(booster: lightgbm.Booster, counts: Sequence[int], dev: Groups, qrels: Qrels) -> dict[int, float]:
    """nDCG@10 of the first n trees' ranking of the dev candidates, for each n of the ascending `counts`, as
    `neurank eval` scores a run. The trees' scores are added up as the counts grow, so each tree is evaluated
    once (asking LightGBM for the first n trees at every n costs the square of the model's size)."""
    scores = np.zeros(len(dev.labels), dtype=np.float64)
    bounds = np.cumsum([0, *dev.sizes])
    curve: dict[int, float] = {}
    done = 0
    for count in counts:
        scores += booster.predict(dev.features, start_iteration=done, num_iteration=count - done, raw_score=True)
        done = count
        run = {query_id: dict(zip(ids, map(float, scores[start:end]), strict=True))
               for query_id, ids, start, end in zip(dev.query_ids, dev.ids, bounds[:-1], bounds[1:], strict=True)}
        curve[count] = evaluate(qrels, run, (DEV_MEASURE,))["ndcg@10"]
    return curve


def _ndcg(searcher: Searcher, plan: RetrievalPlan, queries: Mapping[str, str], qrels: Qrels) -> float:
    """nDCG@10 of `plan` on the judged queries, searched as `neurank eval` searches (ir-measures)."""
    run, _ = run_mode(searcher, plan, {query_id: queries[query_id] for query_id in qrels})
    return evaluate(qrels, run, (DEV_MEASURE,))["ndcg@10"]


def _write_config(out: Path, plan: RetrievalPlan, config: FusionConfig, fingerprints: Mapping[str, str],
                  chosen: Mapping[str, Any]) -> None:
    import lightgbm

    payload = {"features": list(feature_names(plan.scored_lists)), "lists": list(plan.scored_lists),
               "depth": config.depth, "mode": config.mode, "fingerprints": dict(fingerprints),
               "colbert_depth": plan.colbert_depth, "rerank_depth": plan.rerank_depth,
               "lightgbm": lightgbm.__version__, "leaves": chosen["leaves"], "iterations": chosen["iterations"]}
    (out / CONFIG_FILE).write_text(json.dumps(payload, indent=2), encoding="utf-8")
