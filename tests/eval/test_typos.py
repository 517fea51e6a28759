"""Typo'd query sets: deterministic for a seed, the rate held exactly, one real slip per word, a usable dataset."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rapidfuzz.distance import OSA

from neurank.errors import ConfigError
from neurank.eval.datasets import BeirDataset, load_qrels, load_queries
from neurank.eval.typos import KEYBOARD_NEIGHBOURS, misspell, perturb_queries, write_typo_dataset

REPO = Path(__file__).resolve().parents[2]
QUERIES = {
    str(i): text for i, text in enumerate([
        "Statins reduce cardiovascular events in elderly patients",
        "BRCA1 mutations and breast cancer risk",
        "vitamin D supplementation during pregnancy",
        "a b c",
        "Obesity is associated with insulin resistance and type 2 diabetes",
    ] * 20)
}


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text)


def test_the_same_seed_gives_the_same_queries_and_another_seed_others() -> None:
    first, report = perturb_queries(QUERIES, rate=0.3, seed=5)
    again, _ = perturb_queries(QUERIES, rate=0.3, seed=5)
    other, _ = perturb_queries(QUERIES, rate=0.3, seed=6)
    assert first == again
    assert first != other
    assert report.changed_queries > 0


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 1.0])
def test_the_rate_is_the_share_of_eligible_words_misspelled(rate: float) -> None:
    perturbed, report = perturb_queries(QUERIES, rate=rate, seed=1, min_length=4)
    eligible = sum(len(word) >= 4 for text in QUERIES.values() for word in words(text))
    changed = sum(a != b for qid in QUERIES for a, b in zip(words(QUERIES[qid]), words(perturbed[qid]), strict=True))
    assert report.eligible == eligible
    assert report.misspelled == changed == round(rate * eligible)
    assert sum(report.operations.values()) == report.misspelled


def test_every_typo_is_one_edit_that_keeps_the_first_letter_and_short_words() -> None:
    perturbed, report = perturb_queries(QUERIES, rate=1.0, seed=3, min_length=4)
    for qid, text in QUERIES.items():
        for before, after in zip(words(text), words(perturbed[qid]), strict=True):
            if len(before) < 4:
                assert after == before
                continue
            assert after[0] == before[0]
            assert OSA.distance(before, after) == 1
    assert all(report.operations[op] > 0 for op in ("swap", "drop", "double", "neighbour"))


def test_keyboard_neighbours_are_adjacent_keys() -> None:
    assert set(KEYBOARD_NEIGHBOURS["g"]) == set("fhtybv")
    assert set(KEYBOARD_NEIGHBOURS["q"]) == set("wa")
    assert set(KEYBOARD_NEIGHBOURS["m"]) == set("njk")
    word, operation = misspell("Statins", random.Random(0))
    assert word != "Statins" and word[0] == "S" and operation


@pytest.mark.parametrize(("kwargs", "message"), [({"rate": 1.5}, "in \\[0, 1\\]"), ({"rate": 0.1, "min_length": 1},
                                                                                     "min_length")])
def test_bad_options_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        perturb_queries(QUERIES, seed=0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "statins"}) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": qid, "text": text, "metadata": {"n": qid}}) + "\n" for qid, text in QUERIES.items()),
        encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n0\td1\t1\n", encoding="utf-8")
    return folder


def test_the_copy_is_a_dataset_with_the_queries_replaced_and_the_rest_linked(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "typos" / "tiny"
    report = write_typo_dataset(source, out, rate=0.5, seed=2)
    assert load_queries(out) == perturb_queries(QUERIES, rate=0.5, seed=2)[0]
    assert json.loads((out / "queries.jsonl").read_text().splitlines()[3])["metadata"] == {"n": "3"}
    assert (out / "corpus.jsonl").resolve() == (source / "corpus.jsonl").resolve()
    assert load_qrels(out, "test") == load_qrels(source, "test")
    assert BeirDataset.load(out, "test").queries.keys() == {"0"}
    assert json.loads((out / "TYPOS.json").read_text())["misspelled_words"] == report.misspelled
    write_typo_dataset(source, out, rate=0.5, seed=2)  # writing again over an earlier copy is fine
    with pytest.raises(ConfigError, match="another folder"):
        write_typo_dataset(source, source, rate=0.5, seed=2)


def test_the_script_writes_the_same_copy(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "by-script"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "typo_queries.py"), "--dataset", str(source),
                           "--out", str(out), "--rate", "0.5", "--seed", "2"], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout)["misspelled_words"] > 0
    assert load_queries(out) == perturb_queries(QUERIES, rate=0.5, seed=2)[0]
