"""The pure parts of queued ingest: batching budgets, message round trips, splitting, backoff, option checks."""

from __future__ import annotations

import os

import pytest

from neurank.config import IngestOptions
from neurank.documents import Document
from neurank.errors import ConfigError
from neurank.ingest.app import ENCODE_TASK, make_app
from neurank.ingest.core import backoff_delay
from neurank.ingest.messages import BatchMessage, BatchOutcome, DeadLetter
from neurank.ingest.producer import estimate_tokens, form_batches
from neurank.stores.protocol import WriteFailure


def docs(*sizes: int) -> list[Document]:
    return [Document(id=f"d{i}", text="x" * size, source=f"c.jsonl:{i + 1}") for i, size in enumerate(sizes)]


def test_batches_respect_token_count_and_byte_budgets() -> None:
    options = IngestOptions(batch_tokens=100, batch_documents=3, batch_bytes=10_000)
    tokens = [len(b) for b in form_batches(docs(160, 160, 160, 160, 160), options, max_length=256)]
    assert tokens == [2, 2, 1]  # 42 estimated tokens each: two fit in 100
    by_count = [len(b) for b in form_batches(docs(*[4] * 7), options, max_length=256)]
    assert by_count == [3, 3, 1]
    by_bytes = IngestOptions(batch_tokens=10_000, batch_documents=100, batch_bytes=1000)
    assert [len(b) for b in form_batches(docs(600, 600, 300), by_bytes, max_length=256)] == [1, 2]


def test_an_oversized_document_gets_a_batch_of_its_own() -> None:
    options = IngestOptions(batch_tokens=10, batch_documents=10, batch_bytes=10)
    assert [len(b) for b in form_batches(docs(50_000, 3), options, max_length=256)] == [1, 1]
    assert estimate_tokens(docs(50_000)[0], max_length=256) == 256


def test_messages_round_trip_without_secrets_and_split_in_halves() -> None:
    batch = BatchMessage("b7", "run", "local:/data/store", "idx", {"dense": "abc"},
                         [Document("a", "text a", "A", {"year": 2020}, "c.jsonl:1"), *docs(1, 1)])
    assert BatchMessage.from_dict(batch.to_dict()) == batch
    assert set(batch.to_dict()) == {"batch_id", "run_id", "store", "index", "models", "documents"}
    halves = batch.halves()
    assert [(h.batch_id, [d.id for d in h.documents]) for h in halves] == [("b7.0", ["a", "d0"]), ("b7.1", ["d1"])]
    assert batch.halves()[1].halves() == [BatchMessage("b7.1.0", "run", "local:/data/store", "idx",
                                                       {"dense": "abc"}, [batch.documents[2]])]
    outcome = BatchOutcome(indexed=2, dead=[WriteFailure("d1", "why", "c.jsonl:2")], truncated=1, split={"x": 1})
    assert BatchOutcome.from_dict(outcome.to_dict()) == outcome
    letter = DeadLetter(batch.documents[0], "why", "b7", 1.5)
    assert DeadLetter.from_dict(letter.to_dict()) == letter
    assert letter.to_dict()["content_hash"] == batch.documents[0].content_hash


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    for attempt, step in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 30.0)]:
        delays = [backoff_delay(attempt, 1.0, 30.0) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 10


def test_visibility_timeout_must_exceed_the_longest_task() -> None:
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT"):
        IngestOptions(task_time_limit_s=600, retry_backoff_max_s=60, visibility_timeout_s=600)


def test_app_delivers_at_least_once() -> None:
    from neurank.config import Settings

    app = make_app(Settings(broker_url="redis://127.0.0.1:6379/15", ingest=IngestOptions(queue="gpu")))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.task_acks_on_timeout is False
    assert conf.worker_proc_alive_timeout >= 60  # models load in worker_process_init
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_routes[ENCODE_TASK] == {"queue": "gpu"}
    assert ENCODE_TASK in app.tasks


def test_on_rabbitmq_the_queue_is_a_quorum_queue_with_confirmed_publishing_and_whole_second_retries() -> None:
    from neurank.config import Settings

    app = make_app(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//", ledger_url="redis://127.0.0.1:6379/15",
                            ingest=IngestOptions(queue="gpu")))
    (queue,) = app.conf.task_queues
    assert (queue.name, queue.durable, queue.queue_arguments) == ("gpu", True, {"x-queue-type": "quorum"})
    # Celery's native delayed delivery (how retries wait on quorum queues) binds topic exchanges only.
    assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == ("gpu", "topic", "gpu")
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert [app.countdown(delay) for delay in (0.3, 1.0, 2.4)] == [1.0, 1.0, 3.0]
    redis_app = make_app(Settings(broker_url="redis://127.0.0.1:6379/15"))
    assert redis_app.countdown(0.3) == 0.3 and redis_app.conf.task_queues is None


@pytest.mark.integration
def test_batches_held_by_workers_of_an_earlier_version_are_left_out_of_the_holds() -> None:
    import redis

    from neurank.ingest.ledger import Hold, Ledger

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15", decode_responses=True)
    ledger = Ledger(client, f"neurank-test-holds-{os.getpid()}", "run", 60)
    try:
        ledger.deliver("b1", 0, "w1@host")
        client.hset(ledger.key("started"), "b2", "1733000000.5")  # as a worker of the previous version wrote it
        (held,) = ledger.held().items()
        assert held[0] == "b1" and held[1].worker == "w1@host" and isinstance(held[1], Hold)
    finally:
        client.delete(*client.keys(f"{ledger.prefix}:*"))
