"""A cross-encoder as a teacher: its scores of each query's candidate list, computed once per pair."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from neurank.config import Settings
from neurank.train.data import Group
from neurank.train.evaluation import Scorer


def load_teacher(folder: str, settings: Settings) -> Scorer:
    """The teacher cross-encoder's `predict`, on the configured runtime (the int8 export when onnx)."""
    from neurank.onnx_models import CrossEncoder

    encoder = CrossEncoder(folder, home=settings.home, runtime=settings.runtime, int8=settings.int8,
                           max_length=settings.max_length)
    return encoder.predict


def teacher_of(options: Any, settings: Settings) -> tuple[Scorer | None, dict[str, Any]]:
    """The teacher a trainer's `options` name (loaded; None without one), and the options as `training.json`
    records them: the teacher by its fingerprint, so that a report says which model taught it."""
    from neurank.onnx_models.registry import resolve_model

    folder = options.teacher
    described = {**asdict(options), "teacher": resolve_model(folder, settings.home).fingerprint if folder else None}
    return (load_teacher(folder, settings) if folder else None), described


class TeacherScores:
    """`scorer`'s score of each candidate of a group; a (query, document) pair is scored once per run, since
    every epoch shows a query again with some of the same candidates."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self._scores: dict[tuple[str, str], float] = {}

    def __call__(self, group: Group) -> list[float]:
        missing = [i for i, doc in enumerate(group.doc_ids) if (group.query_id, doc) not in self._scores]
        if missing:
            scores = self.scorer(group.query, [group.passages[i] for i in missing])
            for i, score in zip(missing, scores, strict=True):
                self._scores[group.query_id, group.doc_ids[i]] = float(score)
        return [self._scores[group.query_id, doc] for doc in group.doc_ids]
