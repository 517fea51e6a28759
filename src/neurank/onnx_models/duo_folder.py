"""What makes a sequence-classifier folder a pairwise (duoBERT) model: `duo.json` beside its config.

The weights are a one-logit `*ForSequenceClassification`, like a cross-encoder's; the file says the logit
reads `[CLS] query [SEP] a [SEP] b [SEP]` as P(a more relevant than b) = σ(logit), and how many tokens the
query keeps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from neurank.errors import ModelError

DUO_FILE = "duo.json"
DEFAULT_QUERY_LENGTH = 64
"""duoBERT's budget: the query keeps up to 62 word pieces of 512, the passages share the rest."""


@dataclass(frozen=True, slots=True)
class DuoConfig:
    query_length: int = DEFAULT_QUERY_LENGTH

    def __post_init__(self) -> None:
        if isinstance(self.query_length, bool) or not isinstance(self.query_length, int) or self.query_length < 1:
            raise ModelError(f"{DUO_FILE}: query_length must be a positive integer, got {self.query_length!r}")


def is_duo(path: Path) -> bool:
    return (path / DUO_FILE).is_file()


def read_duo(path: Path) -> DuoConfig:
    file = path / DUO_FILE
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {file}: {exc}; a pairwise model folder needs it") from exc
    if not isinstance(saved, dict):
        raise ModelError(f"{file}: expected a JSON object, got {type(saved).__name__}")
    try:
        return DuoConfig(**saved)
    except TypeError as exc:
        raise ModelError(f"{file}: unknown field ({exc}); it holds only query_length") from exc


def save_duo(path: Path, config: DuoConfig) -> None:
    (path / DUO_FILE).write_text(json.dumps(asdict(config), indent=2), encoding="utf-8")
