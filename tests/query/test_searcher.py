"""The Searcher on the local store with the real bundled encoders: stage sets, model checks, one encoding per search."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from neurank.config import Settings
from neurank.documents import read_corpus
from neurank.errors import ConfigError, InputError, PlanError
from neurank.eval.runner import evaluate_modes
from neurank.ingest.inline import ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.target import SearchTarget
from neurank.retrieval import Fusion
from neurank.stores import LocalStore, StoredDocument

DOCUMENTS = {
    "d1": "Statins lower LDL cholesterol and the risk of heart attacks.",
    "d2": "Vitamin D supports bone density in older adults.",
    "d3": "Photovoltaic cells turn sunlight into electricity.",
    "d4": "Aspirin thins the blood and can prevent clots.",
}


class CountingStore(LocalStore):
    """The real local store, counting the document fetches a search makes."""

    gets = 0

    def get(self, name: str, ids: Sequence[str]) -> list[StoredDocument]:
        self.gets += 1
        return super().get(name, ids)


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    lines = [json.dumps({"_id": doc_id, "text": text}) for doc_id, text in DOCUMENTS.items()]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what do statins do"}) + "\n"
                                          + json.dumps({"_id": "q2", "text": "bones and vitamin D"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return folder


def indexed(settings: Settings, beir: Path, store: LocalStore | None = None) -> SearchTarget:
    target = SearchTarget(store or LocalStore(settings.home / "store"), "tiny", EncoderBundle.from_settings(settings))
    ingest_records(read_corpus(beir), target.store, target.index, target.encoders, settings)
    return target


def test_hybrid_without_a_sparse_model_fuses_bm25_and_dense(settings: Settings, beir: Path) -> None:
    no_sparse = settings.model_copy(update={"sparse_model": "none"})
    searcher = indexed(no_sparse, beir).searcher()
    plan = searcher.plan("hybrid", k=3)
    assert [stage.name for stage in plan.stages] == ["bm25", "dense"]
    hits = searcher.search("what do statins do", plan).hits
    assert hits[0].id == "d1" and set(hits[0].stages) == {"bm25", "dense"}
    weighted = searcher.plan("dense+bm25", k=3, fusion=Fusion("min_max", weights=(0.8, 0.2)))
    assert [stage.name for stage in weighted.stages] == ["dense", "bm25"]
    assert searcher.search("what do statins do", weighted).hits[0].id == "d1"
    with pytest.raises(PlanError, match="needs the sparse stage"):
        searcher.plan("bm25+sparse")


def test_eval_checks_every_mode_before_the_first_query(settings: Settings, beir: Path) -> None:
    no_sparse = settings.model_copy(update={"sparse_model": "none"})
    target = indexed(no_sparse, beir)
    answered: list[int] = []
    with pytest.raises(PlanError, match="needs the sparse stage"):
        evaluate_modes(beir, ["bm25", "dense", "sparse"], target, no_sparse, on_query=lambda: answered.append(1))
    assert answered == []
    reports = evaluate_modes(beir, ["bm25", "dense", "hybrid"], target, no_sparse)
    assert reports["hybrid"].metrics["ndcg@10"] == pytest.approx(1.0)


def test_a_search_with_other_models_than_the_index_is_refused(settings: Settings, beir: Path) -> None:
    target = indexed(settings, beir)
    other = SearchTarget(target.store, target.index,
                         EncoderBundle.from_settings(settings.model_copy(update={"max_length": 128})))
    with pytest.raises(ConfigError, match="built with another splade model"):
        other.searcher().plan("hybrid")
    dense_only = SearchTarget(target.store, target.index, EncoderBundle(
        dense=EncoderBundle.from_settings(settings.model_copy(update={"max_length": 128})).dense))
    with pytest.raises(ConfigError, match=r"built with another dense model .* 'minilm-l6'"):
        dense_only.searcher().plan("dense")
    overridden = other.searcher(check_models=False)
    notes = overridden.search("statins", overridden.plan("hybrid")).notes
    assert any("built with another splade model" in note and "searched anyway" in note for note in notes)
    bm25_only = SearchTarget(target.store, target.index, EncoderBundle()).searcher().plan("hybrid")
    assert [stage.name for stage in bm25_only.stages] == ["bm25"], "BM25 needs no model"


def test_an_empty_query_is_refused(settings: Settings, beir: Path) -> None:
    searcher = indexed(settings, beir).searcher()
    with pytest.raises(InputError, match="query is empty"):
        searcher.search("  ", searcher.plan("hybrid"))


def test_a_search_encodes_the_query_once_and_fetches_documents_once(settings: Settings, beir: Path) -> None:
    store = CountingStore(settings.home / "store")
    target = indexed(settings, beir, store)
    searcher = target.searcher()
    plan = searcher.plan("hybrid", k=3)
    before = {name: encoder.stats.texts for name, encoder in target.encoders.sparse_encoders().items()}
    dense_before, store.gets = target.encoders.dense.stats.texts, 0
    result = searcher.search("what do statins do", plan, explain=True)
    assert target.encoders.splade.stats.texts - before["splade"] == 1
    assert target.encoders.dense.stats.texts - dense_before == 1
    assert store.gets == 1
    assert result.explanations is not None and len(result.explanations) == len(result.hits)
    assert result.hits[0].title == "" and result.hits[0].text == DOCUMENTS["d1"]
    assert result.to_dict()["hits"][0]["explain"]["bm25_terms"]
