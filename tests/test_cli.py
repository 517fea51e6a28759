"""The CLI end to end on the local store with the real bundled weights (PyTorch runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neurank.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"NEURANK_HOME": str(tmp_path / "home"), "NEURANK_STORE": f"local:{tmp_path / 'store'}",
              "NEURANK_RUNTIME": "torch", "NEURANK_INT8": "false", "NEURANK_INDEX": "cli"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(*args: str) -> dict | list:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def small_beir(tmp_path: Path, scifact: Path) -> Path:
    """A SciFact slice: the documents judged for 8 test queries plus 150 others."""
    folder = tmp_path / "scifact-slice"
    (folder / "qrels").mkdir(parents=True)
    qrels = (scifact / "qrels" / "test.tsv").read_text().splitlines()
    kept = qrels[1:11]
    (folder / "qrels" / "test.tsv").write_text("\n".join([qrels[0], *kept]) + "\n")
    judged = {line.split("\t")[1] for line in kept}
    qids = {line.split("\t")[0] for line in kept}
    corpus = [line for i, line in enumerate((scifact / "corpus.jsonl").read_text().splitlines())
              if i < 150 or json.loads(line)["_id"] in judged]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    queries = [line for line in (scifact / "queries.jsonl").read_text().splitlines()
               if json.loads(line)["_id"] in qids]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    return folder


def test_ingest_search_info(env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in [
        {"_id": "sun", "title": "Solar panels", "text": "Photovoltaic cells turn sunlight into electricity."},
        {"_id": "vax", "title": "Vaccines", "text": "A vaccine trains the immune system against a virus."},
        {"_id": "bad"},
    ]) + "\n")
    summary = run("ingest", str(corpus), "--json")
    assert summary["indexed"] == 2 and summary["failed"] == 1
    assert summary["failures"][0]["source"] == f"{corpus}:3"

    hybrid = run("search", "how do solar cells make electricity", "--json", "--k", "2")
    top = hybrid["hits"][0]
    assert top["id"] == "sun"
    assert set(top["stages"]) == {"bm25", "sparse", "dense"}
    assert all(stage["normalized"] is not None for stage in top["stages"].values())

    bm25 = run("search", "vaccine immune", "--mode", "bm25", "--json", "--explain")
    assert [h["id"] for h in bm25["hits"]] == ["vax"]
    assert set(bm25["hits"][0]["stages"]) == {"bm25"}
    assert {t["term"] for t in bm25["hits"][0]["explain"]["bm25_terms"]} == {"vaccin", "immun"}

    info = run("index", "info", "cli", "--json")
    assert info["count"] == 2 and set(info["models"]) == {"splade", "deepct", "dense"}


def test_search_without_rerank_model_says_reranking_is_off(env: dict[str, str], tmp_path: Path) -> None:
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"_id": "x", "text": "wind turbines and grid storage"}) + "\n")
    run("ingest", str(corpus), "--json")
    result = CliRunner().invoke(app, ["search", "wind", "--mode", "bm25", "--k", "1"])
    assert result.exit_code == 0
    assert "x" in result.stderr


def test_eval_reports_every_mode(env: dict[str, str], small_beir: Path) -> None:
    report = run("eval", "--dataset", str(small_beir), "--modes", "bm25,sparse,dense,hybrid", "--json")
    assert set(report) == {"bm25", "sparse", "dense", "hybrid"}
    for metrics in report.values():
        assert set(metrics) == {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"}
        assert 0.3 < metrics["ndcg@10"] <= 1.0
    assert run("eval", "--dataset", str(small_beir), "--modes", "bm25", "--json") == {
        "bm25": {**report["bm25"], "latency_ms_p50": pytest.approx(report["bm25"]["latency_ms_p50"], rel=10)}
    }


def test_rerank_mode_without_model_is_a_clear_error(env: dict[str, str], small_beir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--dataset", str(small_beir), "--modes", "bm25+rerank"])
    assert result.exit_code == 2
    assert "reranking is off" in result.stderr
