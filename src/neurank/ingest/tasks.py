"""The task that encodes one batch and upserts it, and the per-process worker state it runs with.

A worker process loads its encoders and opens its store once, in `worker_process_init`; the store comes
from the worker's own Settings, so credentials never travel in messages. Every document of a batch ends
in exactly one place: indexed, or in the dead letters with its reason.

- A transient store error is retried with exponential backoff and jitter, `max_retries` times, then the
  batch's documents become dead letters.
- A batch delivered again after its worker process died (or after it overran its soft time limit) is split
  in halves, so a document that kills workers ends up alone; after `max_deliveries` deaths it is dead.
- A document the encoders or the store reject fails alone; its batch-mates are indexed.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from neurank.config import Settings
from neurank.documents import Document
from neurank.errors import ModelError, NeurankError, StoreUnavailableError
from neurank.ingest.core import backoff_delay, document_failure, encode_isolating_failures, stale_documents
from neurank.ingest.dead_letters import DeadLetters
from neurank.ingest.ledger import Ledger, connect_ledger, namespace, redis_client
from neurank.ingest.messages import BatchMessage, BatchOutcome, DeadLetter
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.protocol import Store, WriteFailure

if TYPE_CHECKING:
    from neurank.ingest.app import IngestApp

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnavailableError, ConnectionError, TimeoutError, redis.ConnectionError, redis.TimeoutError,
)
"""Failures that a retry later can cure."""


@dataclass(slots=True)
class WorkerState:
    """What one worker process holds for its whole life: the store connection, the encoders, Redis."""

    store: Store
    encoders: EncoderBundle
    redis: redis.Redis

    @classmethod
    def create(cls, app: IngestApp) -> WorkerState:
        from neurank.stores import open_store

        settings = app.settings
        return cls(store=open_store(settings), encoders=EncoderBundle.from_settings(settings),
                   redis=redis_client(settings.ledger_redis_url()))

    def warm_up(self) -> None:
        self.encoders.warm_up()


def check_can_serve(settings: Settings) -> None:
    """Raise why a worker with these Settings could not index a batch: no Redis for the run records, a store
    it cannot open or reach (ConfigError, StoreError), or models it cannot load (ModelError)."""
    from neurank.stores import open_store

    connect_ledger(settings.ledger_redis_url())
    open_store(settings).index_spec(settings.index)
    # In a fresh interpreter: exporting or loading models here would leave torch's and onnxruntime's threads
    # and locks in the process that the pool forks its children from, and a child can hang on them.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as check:
        problem = check.submit(model_problem, settings).result()
    if problem is not None:
        raise ModelError(problem)


def model_problem(settings: Settings) -> str | None:
    """Why the models of these Settings cannot load, or None; loading makes a missing ONNX export first.
    A message, not the error: errors that take other arguments than a message do not cross processes."""
    try:
        EncoderBundle.from_settings(settings).warm_up()
    except NeurankError as exc:
        return str(exc)
    return None


_state: WorkerState | None = None


def worker_state(app: IngestApp) -> WorkerState:
    """This process's state, created on first use (the solo pool has no `worker_process_init`)."""
    global _state
    if _state is None:
        _state = WorkerState.create(app)
    return _state


@worker_process_init.connect
def _warm_up_worker_process(**_: Any) -> None:
    from celery import current_app

    from neurank.ingest.app import IngestApp

    app = current_app._get_current_object()
    if not isinstance(app, IngestApp):
        return
    if app.settings.threads and app.settings.runtime == "torch":
        import torch

        torch.set_num_threads(app.settings.threads)
    state = worker_state(app)
    state.warm_up()
    log.info("worker process ready: store %s, models %s", state.store.url, state.encoders.models())


def encode_batch(task: Task, message: dict[str, Any]) -> dict[str, Any]:
    """Index one batch; record its outcome for the producer. Registered on the app by `make_app`."""
    app: IngestApp = task.app
    batch = BatchMessage.from_dict(message)
    state = worker_state(app)
    prefix = namespace(batch.store, batch.index)
    ledger = Ledger(state.redis, prefix, batch.run_id, app.options.ledger_ttl_s)
    dead_letters = DeadLetters(state.redis, prefix)
    losses = ledger.deliver(batch.batch_id, task.request.retries, task.request.hostname or "?") - 1
    if losses == 0 or (len(batch.documents) == 1 and losses < app.options.max_deliveries):
        outcome = index_batch(task, state, batch, ledger, dead_letters)
    else:
        outcome = split_or_bury(task, batch, ledger, dead_letters,
                                f"the worker process died during {losses} of its deliveries")
    ledger.record(batch.batch_id, outcome)
    return outcome.to_dict()


def split_or_bury(task: Task, batch: BatchMessage, ledger: Ledger, dead_letters: DeadLetters,
                  cause: str) -> BatchOutcome:
    """Send a batch that may hold a worker-killing document again in halves; a lone document is dead."""
    if len(batch.documents) == 1:
        return bury(dead_letters, batch, batch.documents,
                    f"{cause}, with this document alone in its batch: it is probably the cause (memory, a crash "
                    "in the model runtime); fix or drop it, then `neurank ingest --retry-dead`")
    halves = batch.halves()
    log.warning("batch %s: %s; sending it again as %d halves", batch.batch_id, cause, len(halves))
    sizes = {half.batch_id: len(half.documents) for half in halves}
    ledger.register(sizes)
    for half in halves:
        task.apply_async(args=[half.to_dict()])
    return BatchOutcome(split=sizes)


def index_batch(task: Task, state: WorkerState, batch: BatchMessage, ledger: Ledger,
                dead_letters: DeadLetters) -> BatchOutcome:
    app: IngestApp = task.app
    options = app.options
    refusal = refusal_reason(state, batch)
    if refusal:
        log.error("batch %s refused: %s", batch.batch_id, refusal)
        return bury(dead_letters, batch, batch.documents, refusal)
    try:
        return write_batch(state, batch, dead_letters)
    except SoftTimeLimitExceeded:
        return split_or_bury(task, batch, ledger, dead_letters,
                             f"indexing overran the time limit ({options.task_time_limit_s:g} s)")
    except TRANSIENT_ERRORS as exc:
        attempt = task.request.retries
        if attempt < options.max_retries:
            delay = app.countdown(backoff_delay(attempt, options.retry_backoff_s, options.retry_backoff_max_s))
            log.warning("batch %s: %s; retry %d/%d in %.1f s", batch.batch_id, exc, attempt + 1,
                        options.max_retries, delay)
            raise task.retry(exc=exc, countdown=delay, max_retries=options.max_retries) from exc
        return bury(dead_letters, batch, batch.documents,
                    f"the store stayed unavailable through {attempt} retries: {exc}; "
                    "once it is back, run `neurank ingest --retry-dead`")
    except Exception as exc:
        log.exception("batch %s failed", batch.batch_id)
        return bury(dead_letters, batch, batch.documents, f"{type(exc).__name__}: {exc}")


def refusal_reason(state: WorkerState, batch: BatchMessage) -> str | None:
    """Why this worker must not index `batch`: another store, or other models than the producer expects."""
    if batch.store != state.store.url:
        return (f"this worker serves {state.store.url}, the batch is for {batch.store}; start a worker with "
                f"--store {batch.store} on its own --queues, then `neurank ingest --retry-dead`")
    models = state.encoders.models()
    if batch.models != models:
        return (f"this worker encodes with models {models}, the producer expected {batch.models}; give "
                "producer and workers the same NEURANK_SPARSE_MODEL, NEURANK_DENSE_MODEL, NEURANK_RUNTIME "
                "and NEURANK_INT8, then `neurank ingest --retry-dead`")
    return None


def write_batch(state: WorkerState, batch: BatchMessage, dead_letters: DeadLetters) -> BatchOutcome:
    """Encode what the store lacks, upsert it, and dead-letter the documents that fail alone."""
    ids = [doc.id for doc in batch.documents]
    todo = stale_documents(state.store, batch.index, batch.documents, state.encoders.models())
    truncated_before = state.encoders.truncated
    encoded, failures = encode_isolating_failures(state.encoders, todo)
    failures = failures + (state.store.upsert(batch.index, encoded).failed if encoded else [])
    outcome = buried_outcome(dead_letters, batch, failures)
    outcome.truncated = state.encoders.truncated - truncated_before
    dead_ids = {failure.id for failure in outcome.dead}
    dead_letters.discard([doc_id for doc_id in ids if doc_id not in dead_ids])
    return outcome


def bury(dead_letters: DeadLetters, batch: BatchMessage, documents: list[Document], reason: str) -> BatchOutcome:
    """Dead-letter `documents` with one reason."""
    return buried_outcome(dead_letters, batch, [document_failure(doc, reason) for doc in documents])


def buried_outcome(dead_letters: DeadLetters, batch: BatchMessage, failures: list[WriteFailure]) -> BatchOutcome:
    by_id = {doc.id: doc for doc in batch.documents}
    now = time.time()
    dead_letters.add([DeadLetter(by_id[f.id], f.reason, batch.batch_id, now) for f in failures])
    return BatchOutcome(indexed=len(batch.documents) - len(failures), dead=failures)
