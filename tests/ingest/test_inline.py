"""Inline ingest with the real encoders and the local store: bad records reported, good ones indexed once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.errors import ModelError
from neurank.ingest.inline import ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.registry import resolve_model
from neurank.stores import open_store


def write_corpus(path: Path, rows: list[dict | bytes]) -> Path:
    lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_records_are_reported_and_reruns_skip(tmp_path: Path, settings: Settings) -> None:
    corpus = write_corpus(tmp_path / "docs.jsonl", [
        {"_id": "d1", "title": "Solar power", "text": "Photovoltaic cells turn sunlight into electricity."},
        b"not json at all",
        {"_id": "d2", "text": "Vaccines train the immune system with a harmless antigen."},
        {"_id": "d3", "text": ""},
        {"_id": "d2", "text": "a duplicate id"},
        {"title": "no id", "text": "orphan"},
        {"_id": "d4", "text": "Antibiotic resistance spreads when bacteria survive treatment."},
    ])
    store = open_store(settings)
    encoders = EncoderBundle.from_settings(settings)
    summary = ingest_records(read_corpus(corpus), store, "docs", encoders, settings)
    assert (summary.indexed, summary.skipped, summary.failed) == (3, 0, 4)
    assert sorted(f.source for f in summary.failures) == [f"{corpus}:{n}" for n in (2, 4, 5, 6)]
    assert all(str(corpus) not in f.reason for f in summary.failures), "the source is named once, beside the reason"
    assert "field 'text': empty text" in next(f.reason for f in summary.failures if f.source == f"{corpus}:4")
    assert store.count("docs") == 3
    stored = store.get("docs", ["d1"])[0]
    assert stored.models == encoders.models() and stored.embedding is not None and stored.sparse["splade"]

    again = ingest_records(read_corpus(corpus), store, "docs", encoders, settings)
    assert (again.indexed, again.skipped, again.failed) == (0, 3, 4)

    changed = write_corpus(tmp_path / "changed.jsonl", [
        {"_id": "d1", "title": "Solar power", "text": "Silicon cells convert light to direct current."},
    ])
    third = ingest_records(read_corpus(changed), store, "docs", encoders, settings)
    assert (third.indexed, third.skipped) == (1, 0)
    assert store.count("docs") == 3
    assert "Silicon" in store.get("docs", ["d1"])[0].document.text


def test_library_calls_use_the_settings_they_are_given(tmp_path: Path, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller's Settings is the only configuration: an environment that cannot even be parsed is never read."""
    from neurank.ingest.run import run_ingest

    monkeypatch.setenv("NEURANK_LOCAL_BUSY_TIMEOUT_S", "not a number")
    corpus = write_corpus(tmp_path / "docs.jsonl", [{"_id": "d1", "text": "Solar cells turn light into power."}])
    summary = run_ingest(settings, corpus)
    assert summary.indexed == 1
    assert open_store(settings).count(settings.index) == 1


def test_a_model_that_cannot_load_stops_the_run_before_the_corpus_is_read(tmp_path: Path, settings: Settings) -> None:
    """A systemic error is raised once, not recorded against every document."""
    folder = tmp_path / "broken-minilm"
    shutil.copytree(resolve_model("minilm-l6", settings.home).path, folder)
    (folder / "model.safetensors").unlink()
    settings = settings.model_copy(update={"sparse_model": "none", "dense_model": str(folder)})
    read: list[str] = []

    def records() -> Iterator[Document]:
        for doc_id in ("d1", "d2"):
            read.append(doc_id)
            yield Document(id=doc_id, text="Solar cells turn light into power.")

    with pytest.raises(ModelError, match="broken-minilm"):
        ingest_records(records(), open_store(settings), "docs", EncoderBundle.from_settings(settings), settings)
    assert read == []
