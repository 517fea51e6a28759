"""The CLI end to end on the local store with the real bundled weights (PyTorch runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from neurank.cli import ExitCode, app, exit_code_for
from neurank.config import load_settings
from neurank.errors import ConfigError, IndexNotFoundError, InputError, StoreError, StoreUnavailableError
from neurank.stores import open_store


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
    ingested = CliRunner().invoke(app, ["ingest", str(corpus), "--json"])
    assert ingested.exit_code == ExitCode.PARTIAL, ingested.output
    summary = json.loads(ingested.stdout)
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
    written = Path(env["NEURANK_HOME"]) / "runs" / f"{small_beir.name}-test-hybrid.trec"
    rescored = run("eval", "--dataset", str(small_beir), "--run", str(written), "--json")
    assert rescored == {str(written): {**report["hybrid"], "latency_ms_p50": None}}


def test_rerank_mode_without_model_is_a_clear_error(env: dict[str, str], small_beir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--dataset", str(small_beir), "--modes", "bm25+rerank"])
    assert result.exit_code == 2
    assert "reranking is off" in result.stderr


@pytest.fixture
def bm25_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI with BM25 alone: no encoder, so these tests need no model weights."""
    for key in ("NEURANK_SPARSE_MODEL", "NEURANK_DENSE_MODEL"):
        monkeypatch.setenv(key, "none")
    return env


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def write_corpus(path: Path, *documents: dict) -> Path:
    path.write_text("".join(json.dumps(document) + "\n" for document in documents))
    return path


def test_a_metadata_correction_is_indexed_again(bm25_env: dict[str, str], tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "v1.jsonl", {"_id": "a", "text": "statins lower cholesterol", "year": 2091})
    assert run("ingest", str(first), "--json")["indexed"] == 1
    fixed = write_corpus(tmp_path / "v2.jsonl", {"_id": "a", "text": "statins lower cholesterol", "year": 2019})
    summary = run("ingest", str(fixed), "--json")
    assert (summary["indexed"], summary["skipped"]) == (1, 0)
    stored = open_store(load_settings()).get("cli", ["a"])
    assert stored[0].document.metadata == {"year": 2019}
    assert run("ingest", str(fixed), "--json")["skipped"] == 1


def test_ingest_exit_code_says_whether_every_document_was_indexed(bm25_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    good = write_corpus(tmp_path / "good.jsonl", {"_id": "a", "text": "one"})
    assert invoke("ingest", str(good)).exit_code == ExitCode.OK
    assert invoke("ingest", str(good)).exit_code == ExitCode.OK  # skipped as unchanged
    mixed = write_corpus(tmp_path / "mixed.jsonl", {"_id": "b", "text": "two"}, {"_id": "c"})
    result = invoke("ingest", str(mixed), "--json")
    assert result.exit_code == ExitCode.PARTIAL
    assert json.loads(result.stdout)["failed"] == 1


def test_brackets_in_queries_titles_and_errors_are_shown_as_text(bm25_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "docs.jsonl",
                          {"_id": "p[1]", "title": "[/i] Protein folding", "text": "protein cells fold quickly"})
    run("ingest", str(corpus), "--json")
    result = invoke("search", "protein [/x] cells", "--mode", "bm25")
    assert result.exit_code == 0, result.output
    for text in ("protein [/x] cells", "[/i] Protein folding", "p[1]"):
        assert text in result.stderr
    missing = invoke("ingest", str(tmp_path / "corpus[knn].jsonl"))
    assert missing.exit_code == ExitCode.USAGE
    assert f"error: {tmp_path / 'corpus[knn].jsonl'} does not exist" in missing.stderr


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("NEURANK_THREADS", "0", "NEURANK_THREADS='0'"),
    ("NEURANK_LOCAL_BUSY_TIMEOUT_S", "abc", "NEURANK_LOCAL_BUSY_TIMEOUT_S='abc'"),
    ("NEURANK_STORE", "host:notaport", "unsupported store URL 'host:notaport'"),
    ("NEURANK_STORE", "http://host:notaport", "malformed store URL 'http://host:notaport'"),
    ("NEURANK_STORE", "http://[::1", "malformed store URL 'http://[::1'"),
])
def test_a_bad_setting_is_one_error_line_with_the_usage_code(bm25_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                             variable: str, value: str, named: str) -> None:
    monkeypatch.setenv(variable, value)
    result = invoke("search", "anything")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(("url", "code"), [
    ("admin:s3cret@search.example:9200", ExitCode.USAGE),
    ("https://admin:s3cret@search.example:9200", ExitCode.USAGE),
    ("http://127.0.0.1:9/?token=s3cret", ExitCode.STORE),  # nothing listens on port 9: unreachable
])
def test_credentials_in_a_store_url_are_never_echoed(bm25_env: dict[str, str], url: str, code: ExitCode) -> None:
    result = invoke("search", "anything", "--mode", "bm25", "--store", url)
    assert result.exit_code == code
    assert "s3cret" not in result.output and "***" in result.stderr


def test_failure_reasons_are_redacted_in_both_outputs(bm25_env: dict[str, str], tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "d.jsonl", {"_id": " https://admin:s3cret@mirror.example/doc", "text": "t"})
    as_json = invoke("ingest", str(corpus), "--json")
    assert "whitespace" in json.loads(as_json.stdout)["failures"][0]["reason"]
    as_text = invoke("ingest", str(corpus))
    assert "whitespace" in as_text.stderr
    for result in (as_json, as_text):
        assert result.exit_code == ExitCode.PARTIAL
        assert "s3cret" not in result.output and "admin:***@mirror.example" in result.output


def test_an_invalid_ingest_setting_stops_only_what_ingests(bm25_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_INGEST_MAX_RETRIES", "-1")
    assert invoke("index", "create").exit_code == ExitCode.OK
    assert run("index", "info", "cli", "--json")["count"] == 0
    with pytest.raises(ConfigError, match="NEURANK_INGEST_MAX_RETRIES='-1'"):
        load_settings().ingest_options()


def test_index_drop_says_whether_there_was_an_index(bm25_env: dict[str, str], tmp_path: Path) -> None:
    run("ingest", str(write_corpus(tmp_path / "d.jsonl", {"_id": "a", "text": "one"})), "--json")
    missing = invoke("index", "drop", "nothing-here")
    assert missing.exit_code == ExitCode.PARTIAL and "no index nothing-here" in missing.stderr
    dropped = invoke("index", "drop", "cli")
    assert dropped.exit_code == ExitCode.OK and "dropped cli" in dropped.stderr
    assert invoke("index", "info", "cli").exit_code == ExitCode.USAGE


def test_delete_by_argument_and_by_file(bm25_env: dict[str, str], tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "d.jsonl", *({"_id": name, "text": f"document {name}"} for name in "abcd"))
    run("ingest", str(corpus), "--json")
    ids = tmp_path / "ids.txt"
    ids.write_text("b\n\nc\n")
    assert run("delete", "a", "--file", str(ids), "--json") == {"index": "cli", "deleted": 3, "not_found": 0}
    assert run("index", "info", "cli", "--json")["count"] == 1
    again = invoke("delete", "a", "d", "--json")
    assert again.exit_code == ExitCode.PARTIAL
    assert json.loads(again.stdout) == {"index": "cli", "deleted": 1, "not_found": 1}
    ids.write_text(" padded\n")
    bad = invoke("delete", "--file", str(ids))
    assert bad.exit_code == ExitCode.USAGE and f"{ids}:1" in bad.stderr and "'id'" in bad.stderr
    assert invoke("delete", "a", "--index", "absent").exit_code == ExitCode.USAGE


def test_exit_codes_come_from_one_mapping() -> None:
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(StoreUnavailableError("down")) == exit_code_for(StoreError("refused")) == 3
    assert exit_code_for(IndexNotFoundError("x", "local:/tmp")) == 2
    assert exit_code_for(ConfigError("bad")) == exit_code_for(InputError("bad")) == 2


@pytest.mark.integration
def test_every_index_command_works_with_an_elasticsearch_url(bm25_env: dict[str, str], noida_url: str,
                                                            small_beir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine is detected from the URL (one GET /); nothing in the commands names it."""
    monkeypatch.setenv("NEURANK_STORE", noida_url)
    monkeypatch.setenv("NEURANK_INDEX", "cli-es")
    invoke("index", "drop", "cli-es")
    assert invoke("index", "create").exit_code == ExitCode.OK
    corpus = write_corpus(tmp_path / "d.jsonl", {"_id": "a", "text": "statins lower cholesterol"},
                          {"_id": "b", "title": "Cells", "text": "protein folding in cells"})
    assert run("ingest", str(corpus), "--json")["indexed"] == 2
    hits = run("search", "statins", "--mode", "bm25", "--json")
    assert [hit["id"] for hit in hits["hits"]] == ["a"]
    assert run("index", "info", "cli-es", "--json")["count"] == 2
    assert run("delete", "b", "--json") == {"index": "cli-es", "deleted": 1, "not_found": 0}
    assert invoke("index", "drop", "cli-es").exit_code == ExitCode.OK
    report = run("eval", "--dataset", str(small_beir), "--modes", "bm25", "--json")
    assert 0.3 < report["bm25"]["ndcg@10"] <= 1.0
    assert invoke("index", "drop", f"beir-{small_beir.name}").exit_code == ExitCode.OK


def test_fuzziness_from_a_flag_or_the_environment_matches_typos(bm25_env: dict[str, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "docs.jsonl", {"_id": "s", "text": "statins lower cholesterol"},
                          {"_id": "w", "text": "wind turbines"})
    run("ingest", str(corpus), "--json")
    assert run("search", "cholestrol", "--mode", "bm25", "--json")["hits"] == []
    fuzzy = run("search", "cholestrol", "--mode", "bm25", "--fuzziness", "AUTO", "--json")["hits"]
    assert [hit["id"] for hit in fuzzy] == ["s"]
    assert run("search", "cholestrol", "--mode", "bm25", "--fuzziness", "AUTO", "--prefix-length", "8",
               "--json")["hits"] == []  # the typo is within the first eight letters
    monkeypatch.setenv("NEURANK_FUZZINESS", "2")
    assert [hit["id"] for hit in run("search", "statnis", "--mode", "bm25", "--json")["hits"]] == ["s"]
    assert run("search", "statnis", "--mode", "bm25", "--no-transpositions", "--max-expansions", "1",
               "--json")["hits"][0]["id"] == "s"
    refused = invoke("search", "statnis", "--mode", "bm25", "--fuzziness", "3")
    assert refused.exit_code == ExitCode.USAGE
    assert "--fuzziness" in refused.stderr and "edit distance 0, 1 or 2" in refused.stderr


def test_spelling_from_a_flag_or_the_environment_searches_the_corrected_query(
        bm25_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = write_corpus(tmp_path / "docs.jsonl", {"_id": "s", "text": "statins lower cholesterol"},
                          {"_id": "w", "text": "wind turbines"})
    run("ingest", str(corpus), "--json")
    assert run("search", "cholestrol", "--mode", "bm25", "--json")["hits"] == []
    corrected = run("search", "cholestrol", "--mode", "bm25", "--spelling", "--json")
    assert corrected["spelling"]["query"] == "cholesterol" and [hit["id"] for hit in corrected["hits"]] == ["s"]
    monkeypatch.setenv("NEURANK_SPELLING", "true")
    assert [hit["id"] for hit in run("search", "turbnes", "--mode", "bm25", "--json")["hits"]] == ["w"]
    assert "spelling" not in run("search", "turbnes", "--mode", "bm25", "--no-spelling", "--json")
    shown = invoke("search", "turbnes", "--mode", "bm25")
    assert shown.exit_code == ExitCode.OK and "“turbnes” → “turbines”" in shown.stderr  # tables go to stderr


def test_eval_with_fuzziness_recovers_typod_queries(bm25_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "typod"
    (folder / "qrels").mkdir(parents=True)
    write_corpus(folder / "corpus.jsonl", {"_id": "s", "text": "statins lower cholesterol"},
                 {"_id": "w", "text": "wind turbines make electricity"})
    write_corpus(folder / "queries.jsonl", {"_id": "1", "text": "cholestrol"}, {"_id": "2", "text": "trubines"})
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\ts\t1\n2\tw\t1\n")
    exact = run("eval", "--dataset", str(folder), "--modes", "bm25", "--json")["bm25"]
    fuzzy = run("eval", "--dataset", str(folder), "--modes", "bm25", "--fuzziness", "AUTO", "--json")["bm25"]
    assert (exact["ndcg@10"], fuzzy["ndcg@10"]) == (0.0, 1.0)
    runs = Path(bm25_env["NEURANK_HOME"]) / "runs"
    assert (runs / "typod-test-bm25.trec").is_file()  # the exact run is kept beside the fuzzy one
    metadata = json.loads((runs / "typod-test-bm25-fuzzy.trec.json").read_text())
    assert metadata["fuzziness"] == "AUTO"
