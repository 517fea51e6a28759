"""The Celery app for ingestion, built from Settings by a factory so that workers, producers and tests agree.

Delivery is at-least-once: a task is acknowledged after it has run (`acks_late`), and a task whose worker
process dies goes back to the queue (`reject_on_worker_lost`). The Redis transport hands a message that was
never acknowledged to another worker once `visibility_timeout_s` has passed, so that timeout must stay above
the longest a task can run (its hard time limit plus the longest retry countdown); `IngestOptions` refuses
values that break this.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from neurank.config import Settings
from neurank.errors import ConfigError, MissingExtraError

try:
    from celery import Celery
except ModuleNotFoundError as exc:
    raise MissingExtraError("celery", "celery") from exc

ENCODE_TASK = "neurank.ingest.encode_batch"


class IngestOptions(BaseSettings):
    """Knobs of queued ingestion, read from `NEURANK_INGEST_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="NEURANK_INGEST_", extra="ignore", frozen=True)

    queue: str = Field(default="neurank.encode", description="the queue encode tasks go to")
    batch_tokens: int = Field(default=16384, ge=1, description="estimated tokens per task (as the encoders' batch)")
    batch_documents: int = Field(default=256, ge=1, description="documents per task at most")
    batch_bytes: int = Field(default=1_000_000, ge=1, description="document text bytes per task at most")
    max_in_flight: int = Field(default=16, ge=1, description="batches sent and not yet finished, at most")
    task_time_limit_s: float = Field(default=600.0, gt=0, description="a task is stopped after this long")
    visibility_timeout_s: float = Field(default=1800.0, gt=0,
                                        description="an unacknowledged task is redelivered after this long")
    max_retries: int = Field(default=6, ge=0, description="retries of a batch while the store is unavailable")
    retry_backoff_s: float = Field(default=1.0, gt=0, description="first retry delay; doubles each time")
    retry_backoff_max_s: float = Field(default=60.0, gt=0, description="longest retry delay")
    warm_up_timeout_s: float = Field(default=300.0, gt=0,
                                     description="a pool process may take this long to load its models")
    max_deliveries: int = Field(default=3, ge=1,
                                description="a document whose worker died this many times is dead-lettered")
    ledger_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, description="how long run records stay in Redis")

    @model_validator(mode="after")
    def _visibility_above_longest_task(self) -> IngestOptions:
        longest = self.task_time_limit_s + self.retry_backoff_max_s
        if self.visibility_timeout_s <= longest:
            raise ConfigError(
                f"NEURANK_INGEST_VISIBILITY_TIMEOUT_S ({self.visibility_timeout_s:g} s) must be above the longest "
                f"a task can be held: its time limit plus the longest retry delay ({longest:g} s); otherwise "
                "Redis hands running tasks to a second worker"
            )
        return self


class IngestApp(Celery):
    """A Celery app that carries the Settings and options its workers run with (never sent in messages)."""

    def __init__(self, settings: Settings, options: IngestOptions, *, threads: int | None = None) -> None:
        super().__init__("neurank", broker=settings.broker_url, set_as_current=True)
        self.settings = settings
        self.options = options
        self.threads = threads
        """torch threads per worker process; None leaves torch's default (or OMP_NUM_THREADS)."""


def make_app(settings: Settings, options: IngestOptions | None = None, *, threads: int | None = None) -> IngestApp:
    """The ingestion app with its one task registered; building it opens no connection."""
    from neurank.ingest.tasks import encode_batch

    options = options or IngestOptions()
    app = IngestApp(settings, options, threads=threads)
    restore_interval = max(1, int(options.visibility_timeout_s // 10))
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
        broker_transport_options={
            "visibility_timeout": options.visibility_timeout_s,
            "unacked_restore_interval": restore_interval,
            "unacked_restore_throttle": 1,
        },
    )
    app.task(bind=True, name=ENCODE_TASK)(encode_batch)
    return app
