"""TREC run files and the metadata beside them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurank.errors import InputError
from neurank.eval import git_commit, metadata_path, read_metadata, read_run, write_run

RUN = {
    "q2": {"b": 0.5, "a": 0.5, "c": 0.032266458},
    "q1": {"x": 12.25, "y": 1e-05},
}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    path = write_run(tmp_path / "bm25.trec", RUN, tag="bm25")
    assert read_run(path) == RUN


def test_lines_are_ranked_by_score_then_id(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run.trec", RUN, tag="bm25")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "q2 Q0 a 1 0.5 bm25",
        "q2 Q0 b 2 0.5 bm25",
        "q2 Q0 c 3 0.032266458 bm25",
        "q1 Q0 x 1 12.25 bm25",
        "q1 Q0 y 2 1e-05 bm25",
    ]


def test_metadata_is_written_beside_the_run(tmp_path: Path) -> None:
    metadata = {"k1": 0.9, "b": 0.4, "models": {"dense": "sha256:abc"}, "runtime": "onnx",
                "plan": {"stages": ["bm25"]}}
    path = write_run(tmp_path / "run.trec", RUN, tag="t", metadata=metadata)
    assert metadata_path(path) == tmp_path / "run.trec.json"
    record = read_metadata(path)
    assert {key: record[key] for key in metadata} == metadata
    assert (record["run"], record["tag"], record["queries"]) == ("run.trec", "t", 2)
    assert "commit" in record
    assert "written_at" in record


def test_given_metadata_wins(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run.trec", RUN, metadata={"commit": "abc123"})
    assert read_metadata(path)["commit"] == "abc123"


@pytest.mark.parametrize(("run", "tag"), [({"q 1": {"a": 1.0}}, "t"), ({"q1": {"a b": 1.0}}, "t"),
                                          ({"q1": {"a": 1.0}}, "my tag")])
def test_ids_and_tags_with_whitespace_cannot_be_written(tmp_path: Path, run: dict, tag: str) -> None:
    with pytest.raises(InputError, match="contains whitespace"):
        write_run(tmp_path / "run.trec", run, tag=tag)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("q1 Q0 a 2 1.0", "expected 6 fields"),
        ("q1 Q0 a x 1.0 t", "rank must be a positive integer"),
        ("q1 Q0 a 0 1.0 t", "rank must be a positive integer"),
        ("q1 Q0 a 2 high t", "score must be a finite number"),
        ("q1 Q0 a 2 nan t", "score must be a finite number"),
        ("q1 Q0 d 2 0.5 t", "appears twice for query 'q1' \\(first on line 1\\)"),
    ],
)
def test_a_bad_run_line_is_named(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 d 1 1.0 t\n\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=reason) as caught:
        read_run(path)
    assert caught.value.source == f"{path}:3"


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_run(tmp_path / "none.trec")
    with pytest.raises(InputError, match="no metadata beside the run"):
        read_metadata(tmp_path / "none.trec")


def test_malformed_metadata(tmp_path: Path) -> None:
    metadata_path(tmp_path / "run.trec").write_text("{\n  oops\n}", encoding="utf-8")
    with pytest.raises(InputError, match="malformed JSON") as caught:
        read_metadata(tmp_path / "run.trec")
    assert caught.value.source == f"{tmp_path / 'run.trec.json'}:2"


def make_git_dir(root: Path, head: str) -> Path:
    git = root / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head, encoding="utf-8")
    return git


def test_git_commit_reads_a_loose_ref(tmp_path: Path) -> None:
    git = make_git_dir(tmp_path, "ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("1" * 40 + "\n", encoding="utf-8")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    assert git_commit(tmp_path / "src" / "pkg") == "1" * 40


def test_git_commit_reads_a_packed_ref_and_a_detached_head(tmp_path: Path) -> None:
    git = make_git_dir(tmp_path / "packed", "ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs\n{'2' * 40} refs/heads/main\n", encoding="utf-8")
    assert git_commit(tmp_path / "packed") == "2" * 40
    make_git_dir(tmp_path / "detached", "3" * 40 + "\n")
    assert git_commit(tmp_path / "detached") == "3" * 40


def test_git_commit_before_the_first_commit(tmp_path: Path) -> None:
    make_git_dir(tmp_path, "ref: refs/heads/main\n")
    assert git_commit(tmp_path) is None


def test_metadata_is_plain_json(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run.trec", {}, metadata={"plan": {"k": 10}})
    assert json.loads(metadata_path(path).read_text(encoding="utf-8"))["plan"] == {"k": 10}
    assert read_run(path) == {}


def test_a_run_file_names_what_sets_it_apart_from_its_mode() -> None:
    from neurank.eval.runner import run_label
    from neurank.query.plan import RetrievalPlan
    from neurank.retrieval import Fusion, Fuzzy

    assert run_label("hybrid", RetrievalPlan.for_mode("hybrid")) == "hybrid"
    assert run_label("bm25", RetrievalPlan.for_mode("bm25", fuzzy=Fuzzy(), ngram=True)) == "bm25-fuzzy-ngram"
    assert run_label("hybrid", RetrievalPlan.for_mode("hybrid", fusion=Fusion("rrf"))) == "hybrid-rrf"
    weighted = Fusion("min_max", "harmonic_mean", weights=(0.3, 0.3, 0.4))
    assert run_label("hybrid", RetrievalPlan.for_mode("hybrid", fusion=weighted)) == (
        "hybrid-min_max-harmonic_mean-w0.3_0.3_0.4")
