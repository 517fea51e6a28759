"""`neurank serve` with a learned fusion model (NEURANK_SERVE_FUSION_MODEL): a request's `fusion: learned` ranks as
`neurank search --fusion learned:DIR` does, and a plan the model was not trained for gets a 422 that says why."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.fusion_slice import DEPTH, MODE, Slice
from tests.serve.conftest import Server, start_server, stop

from neurank.query.learned_fusion import LearnedFusion, feature_names
from neurank.train.fusion import FusionReport

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUERY = "vitamin D deficiency and bone density"


@pytest.fixture(scope="module")
def learned_server(fusion_slice: Slice, fusion_model: FusionReport,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = fusion_slice.settings.model_copy(update={"index": f"beir-{fusion_slice.folder.name}"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEURANK_SPARSE_MODEL", "none")
        started = start_server(settings, tmp_path_factory.mktemp("logs") / "learned.log",
                               fusion_model=str(fusion_model.out))
    yield started
    stop(started)


def test_a_request_fuses_with_the_services_model(learned_server: Server, fusion_slice: Slice,
                                                 fusion_model: FusionReport) -> None:
    body = {"query": QUERY, "mode": MODE, "fusion": "learned", "depth": DEPTH, "k": 5, "explain": True}
    response = httpx.post(f"{learned_server.url}/search", json=body, timeout=60)
    assert response.status_code == 200, response.text
    served = response.json()["hits"]
    searcher = fusion_slice.target.searcher()
    plan = searcher.plan(MODE, k=5, depth=DEPTH, fusion=LearnedFusion.load(fusion_model.out), implied=False)
    expected = searcher.search(QUERY, plan, with_documents=False).hits
    assert [hit["id"] for hit in served] == [hit.id for hit in expected]
    assert [hit["score"] for hit in served] == pytest.approx([hit.score for hit in expected])
    assert served[0]["explain"]["learned"]["score"] == served[0]["score"]
    assert set(served[0]["explain"]["learned"]["features"]) == set(feature_names(["bm25", "dense"]))
    default = httpx.post(f"{learned_server.url}/search", json={**body, "fusion": None}, timeout=60).json()["hits"]
    assert [hit["score"] for hit in default] != [hit["score"] for hit in served]


@pytest.mark.parametrize(("change", "message"), [
    ({"mode": "bm25"}, "it lacks the dense stage"),
    ({"depth": 100}, f"trained on the top {DEPTH} hits of each stage; this plan takes 100"),
])
def test_a_plan_the_model_was_not_trained_for_is_a_422(learned_server: Server, change: dict, message: str) -> None:
    body = {"query": QUERY, "mode": MODE, "fusion": "learned", "depth": DEPTH, **change}
    response = httpx.post(f"{learned_server.url}/search", json=body, timeout=60)
    assert response.status_code == 422 and message in response.json()["error"]
