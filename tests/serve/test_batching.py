"""The micro-batcher, the encoding cache, the in-flight limit and the bind check, without a server."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from neurank.cli import ExitCode, app
from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.serve.batching import EncodingCache, MicroBatcher, SharedEncoders
from neurank.serve.limits import DeadlineExceeded, InFlightLimit, Overloaded
from neurank.serve.metrics import ServeMetrics
from neurank.serve.options import ServeOptions, check_bind, is_loopback


class Recorder:
    """An encode function that keeps each batch it was given (upper-cases the texts); while `gate` is clear a
    call waits for it, so a test knows that a call is running when it queues more texts."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts: list[str]) -> list[str]:
        self.batches.append(list(texts))
        self.running.set()
        assert self.gate.wait(timeout=30)
        return [text.upper() for text in texts]


def batch_samples(metrics: ServeMetrics, encoder: str = "test") -> tuple[float | None, float | None]:
    """(encoder calls, texts in them) as the metrics counted them."""
    return tuple(metrics.registry.get_sample_value(f"neurank_serve_encoder_batch_size_{part}", {"encoder": encoder})
                 for part in ("count", "sum"))  # type: ignore[return-value]


def test_an_idle_encoder_runs_a_lone_text_at_once_and_batches_what_arrives_meanwhile() -> None:
    recorder, metrics = Recorder(), ServeMetrics()
    recorder.gate.clear()
    batcher = MicroBatcher(recorder, name="test", max_batch=64, observer=metrics)
    first = batcher.submit("q0")
    assert recorder.running.wait(timeout=30)  # no window: the lone text's call started with nothing else queued
    with ThreadPoolExecutor(8) as pool:
        later = list(pool.map(batcher.submit, [f"q{i % 6}" for i in range(1, 9)]))
        recorder.gate.set()
        answers = [future.result(timeout=30) for future in [first, *later]]
    batcher.close()
    assert answers == [f"Q{i % 6}" for i in range(9)]
    assert recorder.batches[0] == ["q0"]
    assert len(recorder.batches) == 2 and sorted(recorder.batches[1]) == [f"q{i}" for i in range(6)]
    assert batch_samples(metrics) == (2, 7)  # what the model was given: repeated texts are encoded once
    waits = metrics.registry.get_sample_value("neurank_serve_encoder_queue_seconds_count", {"encoder": "test"})
    assert waits == 9


def test_a_batch_is_cut_at_its_size_and_an_error_reaches_every_caller() -> None:
    recorder, metrics = Recorder(), ServeMetrics()
    recorder.gate.clear()
    batcher = MicroBatcher(recorder, name="test", max_batch=3, observer=metrics)
    futures = [batcher.submit("q0")]
    assert recorder.running.wait(timeout=30)
    futures += [batcher.submit(f"q{i}") for i in range(1, 8)]
    recorder.gate.set()
    assert [future.result(timeout=30) for future in futures] == [f"Q{i}" for i in range(8)]
    assert [len(batch) for batch in recorder.batches] == [1, 3, 3, 1]
    batcher.close()

    def broken(texts: list[str]) -> list[str]:
        raise ValueError("the model failed")

    failing = MicroBatcher(broken, name="broken", max_batch=4, observer=metrics)
    futures = [failing.submit("a"), failing.submit("b")]
    for future in futures:
        with pytest.raises(ValueError, match="the model failed"):
            future.result(timeout=5)
    failing.close()
    assert batch_samples(metrics, "broken")[0] in (1, 2)  # a failed call is still a call


def test_the_cache_forgets_the_least_recently_used() -> None:
    cache = EncodingCache(2)
    cache.put(("fp", "a"), 1)
    cache.put(("fp", "b"), 2)
    assert cache.get(("fp", "a")) == 1
    cache.put(("fp", "c"), 3)
    assert (cache.get(("fp", "a")), cache.get(("fp", "b")), cache.get(("fp", "c"))) == (1, None, 3)
    assert cache.get(("other model", "a")) is None
    off = EncodingCache(0)
    off.put(("fp", "a"), 1)
    assert off.get(("fp", "a")) is None


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> EncoderBundle:
    home = tmp_path_factory.mktemp("encoders")
    return EncoderBundle.from_settings(Settings(home=home, runtime="torch", int8=False))


@pytest.mark.parametrize("batch_size", [16, 1])
def test_shared_encoders_answer_what_the_encoders_answer(encoders: EncoderBundle, batch_size: int) -> None:
    """The real bundled encoders, batched (or not) and cached, give each query the encoding it gets alone."""
    metrics = ServeMetrics()
    shared = SharedEncoders(encoders, ServeOptions(batch_size=batch_size), metrics)
    queries = ["statins and the heart", "vitamin d", "solar cells", "statins and the heart"]
    with ThreadPoolExecutor(4) as pool:
        dense = list(pool.map(lambda q: shared.bundle.dense.encode_queries([q])[0], queries))
        sparse = list(pool.map(lambda q: shared.bundle.splade.encode_queries([q])[0], queries))
    shared.close()
    alone = encoders.dense.encode_queries(queries)
    for got, expected in zip(dense, alone, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sparse[0].keys() == encoders.splade.encode_queries([queries[0]])[0].keys()
    assert shared.bundle.dense.fingerprint == encoders.dense.fingerprint
    assert not dense[0].flags.writeable  # shared through the cache: nobody may change it
    texts = metrics.registry.get_sample_value("neurank_serve_encoder_batch_size_sum", {"encoder": "dense"})
    assert texts is not None and 3 <= texts <= 4  # the repeated query is encoded once, or found in the cache


def test_a_search_starts_all_its_encodings_at_once_and_a_cached_one_skips_the_queue(encoders: EncoderBundle) -> None:
    metrics = ServeMetrics()
    shared = SharedEncoders(encoders, ServeOptions(batch_size=16), metrics)
    splade, dense = shared.bundle.splade, shared.bundle.dense
    with shared.started("statins and the heart", [splade, dense]):
        deadline = time.monotonic() + 60
        while batch_samples(metrics, "splade")[0] != 1 or batch_samples(metrics, "dense")[0] != 1:
            assert time.monotonic() < deadline, "the encodings were not started ahead of the search"
            time.sleep(0.01)  # both encoders run before the search asks either of them
        tokens = splade.encode_queries(["statins and the heart"])[0]
        vector = dense.encode_queries(["statins and the heart"])[0]
    assert batch_samples(metrics, "splade") == batch_samples(metrics, "dense") == (1, 1)  # asked: no second call
    np.testing.assert_allclose(vector, encoders.dense.encode_queries(["statins and the heart"])[0], atol=1e-5)
    assert tokens.keys() == encoders.splade.encode_queries(["statins and the heart"])[0].keys()
    with shared.started("statins and the heart", [splade, dense]):
        assert dense.encode_queries(["statins and the heart"])[0] is vector
    shared.close()
    queued = metrics.registry.get_sample_value("neurank_serve_encoder_queue_seconds_count", {"encoder": "dense"})
    hits = metrics.registry.get_sample_value("neurank_serve_cache_hits_total", {"encoder": "dense"})
    assert (queued, hits, batch_samples(metrics, "dense")) == (1, 1, (1, 1))  # the hit never queued


def test_the_in_flight_limit_refuses_at_once_and_holds_a_late_slot() -> None:
    release = threading.Event()

    async def scenario() -> None:
        limit = InFlightLimit(capacity=2, deadline_s=0.2)
        first = asyncio.ensure_future(limit.run(release.wait))
        second = asyncio.ensure_future(limit.run(release.wait))
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        with pytest.raises(Overloaded):
            await limit.run(lambda: True)
        assert time.perf_counter() - start < 0.05
        for late in (first, second):
            with pytest.raises(DeadlineExceeded, match="deadline of 200 ms"):
                await late
        assert limit.in_flight == 2  # both threads still run: their slots stay taken
        release.set()
        await asyncio.sleep(0.1)
        assert limit.in_flight == 0
        assert await limit.run(lambda: 42) == 42
        limit.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("10.0.0.5", False),
                                                ("example.org", False)])
def test_only_loopback_binds_go_without_a_key(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_bind(host, ServeOptions(api_key="k"))
    if not loopback:
        with pytest.raises(ConfigError, match="set NEURANK_SERVE_API_KEY"):
            check_bind(host, ServeOptions())


def test_the_command_refuses_an_open_bind_without_a_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--store", f"local:{tmp_path}"],
                                env={"NEURANK_HOME": str(tmp_path), "NEURANK_SERVE_API_KEY": ""})
    assert result.exit_code == ExitCode.USAGE
    assert "set NEURANK_SERVE_API_KEY" in result.output
    bad = CliRunner().invoke(app, ["serve", "--store", f"local:{tmp_path}"],
                             env={"NEURANK_HOME": str(tmp_path), "NEURANK_SERVE_MAX_IN_FLIGHT": "0"})
    assert bad.exit_code == ExitCode.USAGE and "NEURANK_SERVE_MAX_IN_FLIGHT='0'" in bad.output
