"""The producer side of queued ingest: validate, skip what is done, batch by token budget, send with backpressure.

A document already stored with the same content hash and model fingerprints is skipped; one already in the
dead letters with the same content is counted as dead again and not sent (`--retry-dead` sends those). The
rest go out in batches bounded by estimated tokens, count and bytes, with at most `max_in_flight` batches
unfinished at any time. A run ends when every batch sent has an outcome, whatever happened to workers on
the way; when no batch finishes for `worker_wait_s` and no live worker consumes the queue, it stops with an
error instead of waiting forever, and when batches are held by workers that no longer answer, it says so and
when they come back. Stopped early, it can simply be run again: writes are idempotent and
finished documents are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import count

from amqp.exceptions import ChannelError
from kombu.exceptions import OperationalError

from neurank.config import IngestOptions, Settings
from neurank.documents import Document
from neurank.errors import ConfigError, InputError
from neurank.ingest.app import ENCODE_TASK, IngestApp, make_app
from neurank.ingest.core import IngestSummary, batched, end_run, stale_documents
from neurank.ingest.dead_letters import DeadLetters
from neurank.ingest.inline import ensure_index
from neurank.ingest.ledger import Hold, Ledger, broker_display, connect_ledger, namespace
from neurank.ingest.messages import BatchMessage, BatchOutcome
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.protocol import Store

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 256
"""Records checked against the store and the dead letters per round trip."""
INSPECT_TIMEOUT_S = 1.0
"""How long live workers have to answer the producer's question about the queues they consume."""

Progress = Callable[[int], None]
"""Called with a number of documents whose fate is settled (skipped, failed, or their batch finished)."""


def estimate_tokens(document: Document, max_length: int) -> int:
    """Word pieces of a passage, from its length (about 4 characters each); encoders cut at `max_length`."""
    return min(max_length, len(document.passage) // 4 + 2)


def form_batches(documents: Iterable[Document], options: IngestOptions, max_length: int) -> Iterator[list[Document]]:
    """Group documents in order into batches within the token, count and byte budgets (one document at least)."""
    batch: list[Document] = []
    tokens = size = 0
    for document in documents:
        doc_tokens = estimate_tokens(document, max_length)
        doc_bytes = len(document.passage.encode("utf-8", "surrogatepass"))
        if batch and (tokens + doc_tokens > options.batch_tokens or size + doc_bytes > options.batch_bytes
                      or len(batch) >= options.batch_documents):
            yield batch
            batch, tokens, size = [], 0, 0
        batch.append(document)
        tokens += doc_tokens
        size += doc_bytes
    if batch:
        yield batch


class QueuedRun:
    """One producer run: it sends batches, waits for their outcomes and folds them into `summary`."""

    def __init__(self, app: IngestApp, store: Store, index: str, models: dict[str, str],
                 on_progress: Progress | None) -> None:
        self.app = app
        self.store = store
        self.index = index
        self.models = models
        self.on_progress = on_progress or (lambda _n: None)
        client = connect_ledger(app.settings.ledger_redis_url())
        prefix = namespace(store.url, index)
        self.dead_letters = DeadLetters(client, prefix)
        self.ledger = Ledger.begin(client, prefix, app.options.ledger_ttl_s)
        self.summary = IngestSummary()
        self.pending: dict[str, int] = {}
        self.unclaimed: dict[str, BatchOutcome] = {}
        """Outcomes that arrived before the split that announces their batch."""
        self._ids = count()

    def select(self, records: Iterable[Document | InputError]) -> Iterator[Document]:
        """The documents to send: valid, not stored as they are, not already dead as they are."""
        for chunk in batched(records, LOOKUP_CHUNK):
            documents = self.summary.documents(chunk)
            stale = stale_documents(self.store, self.index, documents, self.models)
            self.summary.skipped += len(documents) - len(stale)
            dead = self.dead_letters.get([doc.id for doc in stale])
            todo = []
            for doc in stale:
                if doc.id in dead and dead[doc.id].document.content_hash == doc.content_hash:
                    self.summary.dead.append(dead[doc.id].failure)
                else:
                    todo.append(doc)
            self.on_progress(len(chunk) - len(todo))
            yield from todo

    def send(self, documents: list[Document]) -> None:
        self.wait_below(self.app.options.max_in_flight)
        batch = BatchMessage(f"b{next(self._ids)}", self.ledger.run_id, self.store.url, self.index, self.models,
                             documents)
        self.ledger.register({batch.batch_id: len(documents)})
        self.pending[batch.batch_id] = len(documents)
        try:
            self.app.send_task(ENCODE_TASK, args=[batch.to_dict()])
        except (OperationalError, ChannelError) as exc:
            raise ConfigError(
                f"the broker {broker_display(self.app.conf.broker_url)} did not take a batch for queue "
                f"{self.app.options.queue!r}: {exc}; start the broker or fix NEURANK_BROKER_URL, and on RabbitMQ "
                "delete a queue of that name declared with other arguments or set NEURANK_INGEST_QUEUE"
            ) from exc

    def wait_below(self, limit: int) -> None:
        """Wait until fewer than `limit` batches are unfinished (`limit=1`: all of them)."""
        quiet_since = time.monotonic()
        while len(self.pending) >= limit:
            finished = self.ledger.finished(timeout_s=1.0)
            for batch_id, outcome in finished:
                self.settle(batch_id, outcome)
            if finished:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > self.app.options.worker_wait_s:
                self.check_workers(time.monotonic() - quiet_since)
                quiet_since = time.monotonic()

    def check_workers(self, quiet_s: float) -> None:
        """Stop when no live worker consumes the queue, since the batches would wait forever; else say who does,
        and which batches wait for a worker that no longer answers."""
        queue = self.app.options.queue
        where = f"queue {queue!r} of {broker_display(self.app.conf.broker_url)}"
        replies = self.app.control.inspect(timeout=INSPECT_TIMEOUT_S).active_queues() or {}
        lost = {batch_id: hold for batch_id, hold in self.ledger.held().items()
                if batch_id in self.pending and hold.worker not in replies}
        if lost:
            log.warning("%s", self.describe_lost(lost))
        consumers = sorted(name for name, queues in replies.items() if any(q.get("name") == queue for q in queues))
        if not consumers:
            raise ConfigError(
                f"no live worker consumes {where}: no batch finished for {quiet_s:.0f} s; start one with "
                "`neurank worker` (same NEURANK_BROKER_URL and store), then run the same command again: the "
                f"{len(self.pending)} unfinished batches stay queued, and what is indexed by then is skipped"
            )
        log.warning("no batch finished for %.0f s (%d unfinished); %s consume %s", quiet_s, len(self.pending),
                    ", ".join(consumers), where)

    def describe_lost(self, lost: dict[str, Hold]) -> str:
        """Which batches wait for workers that no longer answer, and when the broker hands them out again."""
        by_worker: dict[str, list[str]] = {}
        for batch_id, hold in sorted(lost.items()):
            by_worker.setdefault(hold.worker, []).append(batch_id)
        held = "; ".join(f"{', '.join(ids)} by {worker}" for worker, ids in by_worker.items())
        documents = sum(self.pending[batch_id] for batch_id in lost)
        if self.app.broker == "amqp":
            back = "RabbitMQ hands them to another worker once it sees the worker's connection close"
        else:
            timeout = self.app.options.visibility_timeout_s
            due = max(hold.since for hold in lost.values()) + timeout
            back = (f"Redis hands them to another worker when the visibility timeout of {timeout:g} s expires, by "
                    f"{time.strftime('%H:%M:%S', time.localtime(due))} (in {max(0.0, due - time.time()):.0f} s); see "
                    "NEURANK_INGEST_VISIBILITY_TIMEOUT_S in the README to size it")
        return f"{len(lost)} batches ({documents} documents) are held by workers that no longer answer ({held}): {back}"

    def settle(self, batch_id: str, outcome: BatchOutcome) -> None:
        if batch_id not in self.pending:
            self.unclaimed[batch_id] = outcome
            return
        size = self.pending.pop(batch_id)
        self.summary.indexed += outcome.indexed
        self.summary.dead.extend(outcome.dead)
        self.summary.truncated += outcome.truncated
        self.on_progress(size - sum(outcome.split.values()))
        self.pending.update(outcome.split)
        for child in outcome.split:
            if child in self.unclaimed:
                self.settle(child, self.unclaimed.pop(child))

    def finish(self) -> IngestSummary:
        """Wait for every batch, then end the run as an inline one ends: what the workers wrote is searchable."""
        self.wait_below(1)
        end_run(self.store, self.index)
        return self.summary


def open_run(settings: Settings, app: IngestApp | None, store: Store | None,
             on_progress: Progress | None) -> QueuedRun:
    """Check the index against the configured encoders (creating it if needed) and start a run."""
    from neurank.stores import open_store

    app = app or make_app(settings)
    store = store or open_store(settings)
    encoders = EncoderBundle.from_settings(settings)
    ensure_index(store, settings.index, encoders.index_spec(settings))
    return QueuedRun(app, store, settings.index, encoders.models(), on_progress)


def ingest_via_celery(records: Iterable[Document | InputError], settings: Settings, *, app: IngestApp | None = None,
                      store: Store | None = None, on_progress: Progress | None = None) -> IngestSummary:
    """Index `records` through Celery workers; return what happened to every record."""
    run = open_run(settings, app, store, on_progress)
    for batch in form_batches(run.select(records), run.app.options, settings.max_length):
        run.send(batch)
    return run.finish()


def retry_dead_letters(settings: Settings, *, app: IngestApp | None = None, store: Store | None = None,
                       on_progress: Progress | None = None) -> IngestSummary:
    """Send the index's dead letters to the workers again; those indexed leave the dead letters."""
    run = open_run(settings, app, store, on_progress)
    documents = [letter.document for letter in run.dead_letters]
    for batch in form_batches(documents, run.app.options, settings.max_length):
        run.send(batch)
    return run.finish()
