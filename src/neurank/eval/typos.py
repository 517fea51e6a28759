"""A typo-perturbed copy of a BEIR dataset's queries, to measure what misspelled queries cost each retrieval mode.

Every word of at least `min_length` ASCII letters can get one typo; exactly `round(rate × eligible words)` of
them do, drawn with a seeded generator, so the same seed gives the same queries and the rate holds exactly. A
typo is one of four single edits, each a real typing slip and each one edit away (optimal string alignment): two
adjacent different letters swapped, a letter dropped, a letter doubled, or a letter replaced by a neighbour on a
QWERTY keyboard. The first letter is never touched (people rarely mistype it). The copy is a dataset folder
`neurank eval` reads: `queries.jsonl` rewritten, everything else linked to the source.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from neurank.errors import ConfigError
from neurank.eval.datasets import load_queries

__all__ = ["OPERATIONS", "TypoReport", "misspell", "perturb_queries", "write_typo_dataset"]

OPERATIONS = ("swap", "drop", "double", "neighbour")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_WORD = re.compile(r"[A-Za-z]+")
PROVENANCE = "TYPOS.json"
"""What the copy records about itself: source, seed, rate and counts."""


def _neighbours() -> dict[str, str]:
    """Each letter's QWERTY neighbours: left and right on its row, and the keys touching it above and below."""
    position = {key: (row, col) for row, keys in enumerate(_ROWS) for col, key in enumerate(keys)}
    near: dict[str, str] = {}
    for key, (row, col) in position.items():
        # rows are staggered by half a key: the row above touches columns col and col + 1, the row below col - 1, col
        touching = [(row, col - 1), (row, col + 1), (row - 1, col), (row - 1, col + 1), (row + 1, col - 1),
                    (row + 1, col)]
        near[key] = "".join(_ROWS[r][c] for r, c in touching if 0 <= r < len(_ROWS) and 0 <= c < len(_ROWS[r]))
    return near


KEYBOARD_NEIGHBOURS = _neighbours()


def misspell(word: str, rng: random.Random) -> tuple[str, str]:
    """(`word` with one typo, the operation's name); `word` has at least two ASCII letters."""
    if len(word) < 2 or not word.isascii() or not word.isalpha():
        raise ConfigError(f"cannot misspell {word!r}: a typo needs a word of two or more ASCII letters")
    swaps = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
    operations = [op for op in OPERATIONS if op != "swap" or swaps]
    operation = rng.choice(operations)
    if operation == "swap":
        i = rng.choice(swaps)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:], operation
    i = rng.randrange(1, len(word))
    if operation == "drop":
        return word[:i] + word[i + 1:], operation
    if operation == "double":
        return word[:i] + word[i] + word[i:], operation
    neighbour = rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()])
    return word[:i] + (neighbour.upper() if word[i].isupper() else neighbour) + word[i + 1:], operation


@dataclass(frozen=True, slots=True)
class TypoReport:
    """What a perturbation did: eligible and misspelled words, per operation, and the queries it changed."""

    eligible: int
    misspelled: int
    operations: dict[str, int] = field(default_factory=dict)
    changed_queries: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"eligible_words": self.eligible, "misspelled_words": self.misspelled,
                "operations": dict(self.operations), "changed_queries": self.changed_queries}


def perturb_queries(queries: dict[str, str], *, rate: float, seed: int, min_length: int = 4
                    ) -> tuple[dict[str, str], TypoReport]:
    """`queries` (id → text) with exactly `round(rate × eligible)` words misspelled, the same for the same seed."""
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"the typo rate must be in [0, 1] (a share of the eligible words), got {rate}")
    if min_length < 2:
        raise ConfigError(f"min_length must be >= 2 (a typo keeps the first letter), got {min_length}")
    words = [(qid, match) for qid, text in queries.items() for match in _WORD.finditer(text)
             if len(match[0]) >= min_length]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(words)), round(rate * len(words))))
    edits: dict[str, list[tuple[re.Match[str], str]]] = {}
    operations: Counter[str] = Counter()
    for index in chosen:
        qid, match = words[index]
        typo, operation = misspell(match[0], rng)
        edits.setdefault(qid, []).append((match, typo))
        operations[operation] += 1
    perturbed = dict(queries)
    for qid, replacements in edits.items():
        text = queries[qid]
        for match, typo in reversed(replacements):  # right to left, so earlier offsets stay valid
            text = text[: match.start()] + typo + text[match.end():]
        perturbed[qid] = text
    report = TypoReport(len(words), len(chosen), {op: operations[op] for op in OPERATIONS}, len(edits))
    return perturbed, report


def write_typo_dataset(source: Path, out: Path, *, rate: float, seed: int, min_length: int = 4) -> TypoReport:
    """A dataset folder at `out`: `source`'s queries perturbed into `queries.jsonl` (every other field of each line
    kept), every other entry of `source` linked, and `TYPOS.json` saying how it was made."""
    queries = load_queries(source)  # validates every line, naming file:line
    if out.resolve() == source.resolve():
        raise ConfigError(f"the typo'd copy must go to another folder than its source {source}")
    perturbed, report = perturb_queries(queries, rate=rate, seed=seed, min_length=min_length)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (source / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            record["text"] = perturbed[str(record["_id"]).strip()]
            lines.append(json.dumps(record, ensure_ascii=False))
    (out / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for entry in source.iterdir():
        link = out / entry.name
        if entry.name in {"queries.jsonl", PROVENANCE}:
            continue
        if link.exists() and not link.is_symlink():
            raise ConfigError(f"{link} exists and is not a link; give --out a new or earlier typo'd folder")
        link.unlink(missing_ok=True)
        link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    provenance = {"source": str(source.resolve()), "seed": seed, "rate": rate, "min_length": min_length,
                  **report.to_dict()}
    (out / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return report
