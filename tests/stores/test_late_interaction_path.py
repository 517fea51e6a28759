"""Late interaction end to end on every store, with a tiny random model: ingest writes token vectors, the colbert
stage rescores the first stage's candidates by MaxSim over them, explain aligns tokens, cascades rerank after it.

The model is randomly initialised: these tests check code paths and bookkeeping, never retrieval quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.onnx_models.conftest import tiny_classifier, tiny_late_interaction

from neurank.cli import hits_table
from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.errors import ConfigError
from neurank.eval.runner import evaluate_modes
from neurank.ingest.inline import ingest_records
from neurank.onnx_models import CrossEncoder
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.late_interaction import COLBERT_OFF_NOTE
from neurank.query.rerank import Reranker
from neurank.query.target import SearchTarget
from neurank.stores import LocalStore, Store
from neurank.stores.protocol import EncodedDocument
from neurank.stores.scoring import maxsim

INDEX = "late"
QUERY = "how do vaccines train the immune system"
DOCUMENTS = {
    "vaccine": "Vaccines train the immune system with a harmless antigen.",
    "immune": "The immune system fights infections with antibodies and T cells.",
    "flu": "Flu vaccines are updated every year for new strains.",
    "bread": "Bread dough rises because yeast makes carbon dioxide.",
    "solar": "Photovoltaic cells turn sunlight into electricity.",
}


@pytest.fixture(scope="module")
def colbert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    return tiny_late_interaction(tmp_path_factory.mktemp("colbert"), home)


@pytest.fixture
def settings(tmp_path: Path, colbert_folder: Path) -> Settings:
    return Settings(home=tmp_path / "home", runtime="torch", int8=False, sparse_model="none", dense_model="none",
                    colbert_model=str(colbert_folder))


@pytest.fixture(params=["local", pytest.param("osmem", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("osmem_store")


def corpus(folder: Path) -> Path:
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": doc_id, "text": text}) + "\n" for doc_id, text in DOCUMENTS.items()))
    return path


def indexed(store: Store, settings: Settings, tmp_path: Path) -> SearchTarget:
    target = SearchTarget(store, INDEX, EncoderBundle.from_settings(settings))
    summary = ingest_records(read_corpus(corpus(tmp_path)), store, INDEX, target.encoders, settings)
    assert summary.indexed == len(DOCUMENTS) and not summary.failures
    return target


def test_the_colbert_stage_orders_candidates_by_maxsim_over_stored_vectors(store: Store, settings: Settings,
                                                                           tmp_path: Path) -> None:
    target = indexed(store, settings, tmp_path)
    searcher = target.searcher()
    plan = searcher.plan("bm25+colbert", k=5, depth=10)
    assert (plan.colbert_depth, plan.rerank_depth) == (10, 0)
    result = searcher.search(QUERY, plan, explain=True)
    candidates = [hit.id for hit in result.hits]
    assert set(candidates) == {"vaccine", "immune", "flu"}, "BM25 matched these; late interaction reorders them"
    stored = {doc.document.id: doc for doc in store.get(INDEX, candidates)}
    query_vectors = target.encoders.colbert.encode_queries([QUERY])[0]
    expected = maxsim(query_vectors, [stored[doc_id].token_vectors for doc_id in candidates])
    raw = [hit.stages["colbert"].raw for hit in result.hits]
    assert raw == pytest.approx(expected.tolist(), rel=1e-5)
    assert raw == sorted(raw, reverse=True) and all("bm25" in hit.stages for hit in result.hits)
    assert [hit.stages["colbert"].rank for hit in result.hits] == [1, 2, 3]
    assert "colbert" in [column.header for column in hits_table("q", result).columns], "the table shows the stage"
    assert result.explanations is not None
    alignment = result.explanations[0].colbert
    assert [query for query, _, _ in alignment] == target.encoders.colbert.query_tokens(QUERY)
    document_tokens = target.encoders.colbert.document_tokens(DOCUMENTS[candidates[0]])
    assert all(document in document_tokens for _, document, _ in alignment)
    assert sum(similarity for _, _, similarity in alignment) == pytest.approx(raw[0], rel=1e-4)


def test_a_candidate_without_token_vectors_is_named_and_follows_the_rescored(store: Store, settings: Settings,
                                                                             tmp_path: Path) -> None:
    target = indexed(store, settings, tmp_path)
    legacy = Document("legacy", "Vaccines vaccines vaccines: the immune system, trained.")
    written = store.upsert(INDEX, [EncodedDocument(legacy, models=target.encoders.models())])
    assert written.written == 1
    searcher = target.searcher()
    result = searcher.search(QUERY, searcher.plan("bm25+colbert", k=5, depth=10))
    ids = [hit.id for hit in result.hits]
    assert ids[-1] == "legacy" and "colbert" not in result.hits[-1].stages
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True), "score order is list order (metrics and run files sort by it)"
    assert any("1 of the top 4 candidates have no token vectors" in note and "legacy" in note
               for note in result.notes)


@pytest.mark.parametrize("compression", ["int8", "binary"])
def test_the_configured_token_compression_builds_the_local_index(settings: Settings, tmp_path: Path,
                                                                 compression: str) -> None:
    compressed = settings.model_copy(update={"token_compression": compression})
    store = LocalStore(tmp_path / "store")
    target = indexed(store, compressed, tmp_path)
    spec = store.index_spec(INDEX)
    assert spec is not None and spec.token_compression == compression
    stored = {doc.document.id: doc.token_vectors for doc in store.get(INDEX, list(DOCUMENTS))}
    encoded = dict(zip(DOCUMENTS, target.encoders.colbert.encode_documents(list(DOCUMENTS.values())), strict=True))
    for doc_id, vectors in encoded.items():
        got = stored[doc_id]
        assert got is not None and got.shape == vectors.shape
        if compression == "binary":
            assert np.array_equal(np.sign(got), np.where(vectors > 0, 1.0, -1.0)), "one sign bit per dimension"
        else:
            assert np.abs(got - vectors).max() < 0.02, "int8 keeps each value within a step of its row's scale"
    with pytest.raises(ConfigError, match="token_compression"):
        indexed(store, settings, tmp_path)  # a changed setting is refused, not mixed into the index


def test_without_a_model_the_stage_says_it_is_off(store: Store, settings: Settings, tmp_path: Path) -> None:
    target = indexed(store, settings, tmp_path)
    bare = SearchTarget(store, INDEX, EncoderBundle()).searcher()
    result = bare.search(QUERY, bare.plan("bm25+colbert", k=5))
    assert COLBERT_OFF_NOTE in result.notes and all("colbert" not in hit.stages for hit in result.hits)
    other = settings.model_copy(update={"colbert_document_length": 64})
    mismatched = SearchTarget(store, INDEX, EncoderBundle.from_settings(other)).searcher()
    with pytest.raises(ConfigError, match="built with another colbert model"):
        mismatched.plan("bm25+colbert")
    searcher = target.searcher()
    assert searcher.plan("bm25").colbert_depth == 100, "a configured model joins a search's plan"
    assert searcher.plan("bm25", implied=False).colbert_depth == 0


def test_a_cascade_reranks_what_late_interaction_kept(settings: Settings, tmp_path: Path) -> None:
    target = indexed(LocalStore(tmp_path / "store"), settings, tmp_path)
    cross = CrossEncoder(str(tiny_classifier(tmp_path / "cross", settings.home, num_labels=1)), home=settings.home,
                         runtime="torch", int8=False, max_length=64)
    searcher = target.searcher(Reranker(cross, by_first_stage={"bm25+colbert": 0.5}))
    plan = searcher.plan("bm25+colbert+rerank", k=3, depth=10, rerank_depth=2)
    assert (plan.colbert_depth, plan.rerank_depth, plan.rerank_first_stage) == (10, 2, "bm25+colbert")
    hits = searcher.search(QUERY, plan).hits
    assert [set(hit.stages) for hit in hits[:2]] == [{"bm25", "colbert", "rerank"}] * 2
    assert "rerank" not in hits[2].stages and "colbert" in hits[2].stages
    assert all(hit.stages["rerank"].normalized is not None for hit in hits[:2]), "the cascade key's weight applies"
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and scores[2] < scores[1], "the tail ranks below the head"


def test_eval_runs_colbert_modes_and_refuses_them_without_a_model(settings: Settings, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    target = indexed(store, settings, tmp_path)
    (tmp_path / "qrels").mkdir()
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": QUERY}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tvaccine\t1\n")
    reports = evaluate_modes(tmp_path, ["bm25", "bm25+colbert"], target, settings)
    assert set(reports) == {"bm25", "bm25+colbert"}
    assert all(np.isfinite(report.metrics["ndcg@10"]) for report in reports.values())
    with pytest.raises(ConfigError, match="late interaction is off"):
        evaluate_modes(tmp_path, ["bm25+colbert"], SearchTarget(store, INDEX, EncoderBundle()), settings)


def test_calibration_chooses_the_colbert_stages_weight_and_the_search_uses_it(settings: Settings,
                                                                                  colbert_folder: Path,
                                                                                  tmp_path: Path) -> None:
    import shutil

    from neurank.eval.datasets import load_qrels
    from neurank.train.calibration import calibrate_model

    folder = tmp_path / "colbert"
    shutil.copytree(colbert_folder, folder)
    local = settings.model_copy(update={"colbert_model": str(folder)})
    target = indexed(LocalStore(tmp_path / "store"), local, tmp_path)
    (tmp_path / "qrels").mkdir()
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": QUERY}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\timmune\t1\n")
    chosen = calibrate_model(folder, tmp_path, load_qrels(tmp_path, "test"), local, target=target,
                             first_stages=["bm25"], split="test", depth=10)
    saved = json.loads((folder / "rerank.json").read_text())
    assert saved["first_stages"]["bm25"]["first_stage_weight"] == chosen[0].first_stage_weight
    searcher = SearchTarget(target.store, INDEX, EncoderBundle.from_settings(local)).searcher()
    assert searcher.late_interaction is not None
    assert searcher.late_interaction.weight_for("bm25") == chosen[0].first_stage_weight
    assert searcher.plan("bm25+colbert").colbert_depth, "rerank.json is no part of the model: the index still fits"
