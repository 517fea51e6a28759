"""Evaluation: BEIR datasets, metrics through ir-measures, TREC runs with their metadata."""

from neurank.eval.datasets import BeirDataset, Qrels, available_splits, load_qrels, load_queries
from neurank.eval.metrics import DEFAULT_MEASURES, evaluate, evaluate_per_query
from neurank.eval.runs import Run, git_commit, metadata_path, read_metadata, read_run, write_run

__all__ = [
    "DEFAULT_MEASURES",
    "BeirDataset",
    "Qrels",
    "Run",
    "available_splits",
    "evaluate",
    "evaluate_per_query",
    "git_commit",
    "load_qrels",
    "load_queries",
    "metadata_path",
    "read_metadata",
    "read_run",
    "write_run",
]
