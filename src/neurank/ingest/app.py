"""The Celery app for ingestion, built from Settings by a factory so that workers, producers and tests agree.

Delivery is at-least-once: a task is acknowledged after it has run (`acks_late`), and a task whose worker
process dies goes back to the queue (`reject_on_worker_lost`). When the whole worker dies, the brokers differ:

- Redis hands a message that was never acknowledged to another worker once `visibility_timeout_s` has
  passed, so that timeout must stay above the longest a task can run (its hard time limit plus the longest
  retry countdown); `Settings.ingest` refuses values that break this.
- RabbitMQ requeues a worker's unacknowledged messages as soon as its connection closes. The queue is a
  quorum queue (replicated, and Celery then delays retries with RabbitMQ's native delayed delivery, which
  needs a topic exchange), and publishing waits for the broker's confirmation. The cap on deliveries that
  kill their worker is neurank's own count in the run records, on both brokers: it counts only deliveries
  that began the batch, and it ends in a dead letter with its reason, where a queue's `x-delivery-limit`
  would drop the message (RabbitMQ 4 sets 20 by default, far above `max_deliveries`).

A worker that cannot serve never says ready: before it consumes, it opens and reaches its store and loads
its models (a missing ONNX export is made first); if it cannot, it stops with the error that says why,
instead of taking batches it can only fail.
"""

from __future__ import annotations

import math
from typing import Any

from neurank.config import IngestOptions, Settings, broker_kind
from neurank.errors import MissingExtraError

try:
    from celery import Celery, bootsteps
    from kombu import Exchange, Queue
except ModuleNotFoundError as exc:
    raise MissingExtraError("celery", "celery") from exc

ENCODE_TASK = "neurank.ingest.encode_batch"


class IngestApp(Celery):
    """A Celery app that carries the Settings its workers run with (never sent in messages)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("neurank", broker=settings.broker_url, set_as_current=True)
        self.settings = settings
        self.options = settings.ingest_options()
        self.broker = broker_kind(settings.broker_url)

    def countdown(self, delay_s: float) -> float:
        """A retry delay the broker can keep: RabbitMQ's native delayed delivery counts whole seconds (and
        Celery fails on a delay under one), so it is rounded up there."""
        return float(math.ceil(delay_s)) if self.broker == "amqp" else delay_s


class ServeCheck(bootsteps.Step):
    """A worker step that runs while the worker is built, before the pool forks and the consumer starts: the
    worker stops here, with the typed error, if it cannot serve."""

    label = "neurank serve check"

    def create(self, parent: Any) -> None:
        from neurank.ingest.tasks import check_can_serve

        check_can_serve(parent.app.settings)


def broker_options(url: str, options: IngestOptions) -> dict[str, Any]:
    """The Celery settings that depend on the broker (see the module docstring)."""
    if broker_kind(url) == "amqp":
        return {
            "task_queues": [Queue(options.queue, Exchange(options.queue, type="topic"), routing_key=options.queue,
                                  durable=True, queue_arguments={"x-queue-type": "quorum"})],
            "worker_detect_quorum_queues": True,
            "broker_transport_options": {"confirm_publish": True},
        }
    return {"broker_transport_options": {
        "visibility_timeout": options.visibility_timeout_s,
        "unacked_restore_interval": max(1, int(options.visibility_timeout_s // 10)),
        "unacked_restore_throttle": 1,
    }}


def make_app(settings: Settings) -> IngestApp:
    """The ingestion app with its one task registered; building it opens no connection."""
    from neurank.ingest.tasks import encode_batch

    options = settings.ingest_options()
    app = IngestApp(settings)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure=True,
        task_acks_on_timeout=False,
        task_time_limit=options.task_time_limit_s,
        task_soft_time_limit=options.task_time_limit_s * 0.9,
        task_routes={ENCODE_TASK: {"queue": options.queue}},
        task_default_queue=options.queue,
        worker_prefetch_multiplier=1,
        worker_proc_alive_timeout=options.warm_up_timeout_s,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        **broker_options(settings.broker_url, options),
    )
    app.steps["worker"].add(ServeCheck)
    app.task(bind=True, name=ENCODE_TASK)(encode_batch)
    return app
