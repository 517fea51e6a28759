"""Per-run bookkeeping in Redis: which batches a run sent, how often each was delivered, how each ended.

The producer waits on it (backpressure and progress), workers write to it, `neurank ingest status` reads it.
It lives in Redis whichever broker carries the tasks (`Settings.ledger_redis_url`).
Writes are keyed by batch id, so a redelivered task records one outcome, not two. Keys live under
`neurank:{index}@{store url}` and expire after `ledger_ttl_s`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neurank.errors import ConfigError, MissingExtraError
from neurank.ingest.messages import BatchOutcome

try:
    import redis
    from kombu.utils.url import maybe_sanitize_url
except ModuleNotFoundError as exc:
    raise MissingExtraError(exc.name or "redis", "celery") from exc


def namespace(store_url: str, index: str) -> str:
    """The Redis key prefix of one index in one store (the store URL carries no credentials)."""
    return f"neurank:{index}@{store_url}"


def redis_client(url: str) -> redis.Redis:
    """A client for the Redis of run records and dead letters (`Settings.ledger_redis_url`); connects on first
    command."""
    return redis.Redis.from_url(url, decode_responses=True)


def broker_display(url: str) -> str:
    """A broker or Redis URL without its password, for messages."""
    return str(maybe_sanitize_url(url))


def connect_ledger(url: str) -> redis.Redis:
    """A client for the Redis of run records, checked now so that a wrong URL fails with a clear message."""
    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at {broker_display(url)} (run records and dead letters): {exc}; "
                          "start Redis or set NEURANK_LEDGER_URL (NEURANK_BROKER_URL when the broker is Redis)"
                          ) from exc
    return client


@dataclass(frozen=True, slots=True)
class Hold:
    """A batch a worker has begun and not finished: who began it, and when (epoch seconds)."""

    worker: str
    since: float


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    batches: int
    documents: int
    started: int
    """Batches a worker has begun (and not finished): in flight, or lost with their worker and waiting."""
    done: int
    indexed: int
    started_at: float | None


class Ledger:
    """The records of one ingest run."""

    def __init__(self, client: redis.Redis, prefix: str, run_id: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.run_id = run_id
        self.ttl_s = ttl_s

    @classmethod
    def begin(cls, client: redis.Redis, prefix: str, ttl_s: int) -> Ledger:
        """Open a new run and make it the one `ingest status` reports."""
        ledger = cls(client, prefix, f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}", ttl_s)
        with client.pipeline() as pipe:
            pipe.set(f"{prefix}:run", ledger.run_id, ex=ttl_s)
            pipe.set(ledger.key("started_at"), time.time(), ex=ttl_s)
            pipe.execute()
        return ledger

    @classmethod
    def latest(cls, client: redis.Redis, prefix: str, ttl_s: int) -> Ledger | None:
        run_id = client.get(f"{prefix}:run")
        return cls(client, prefix, str(run_id), ttl_s) if run_id else None

    def key(self, part: str) -> str:
        return f"{self.prefix}:run:{self.run_id}:{part}"

    def register(self, sizes: Mapping[str, int]) -> None:
        """Record batches as sent (batch id → document count) before they are queued."""
        with self.client.pipeline() as pipe:
            batches: dict[Any, Any] = dict(sizes)
            pipe.hset(self.key("batches"), mapping=batches)
            pipe.expire(self.key("batches"), self.ttl_s)
            pipe.execute()

    def deliver(self, batch_id: str, attempt: int, worker: str) -> int:
        """Count one delivery of a batch's `attempt`-th try to `worker` and return how many there have been."""
        with self.client.pipeline() as pipe:
            pipe.hincrby(self.key("deliveries"), f"{batch_id}:{attempt}", 1)
            pipe.hset(self.key("started"), batch_id, json.dumps([worker, time.time()]))
            for part in ("deliveries", "started"):
                pipe.expire(self.key(part), self.ttl_s)
            return int(pipe.execute()[0])

    def record(self, batch_id: str, outcome: BatchOutcome) -> None:
        """Store a batch's outcome and tell the producer, in one transaction."""
        payload = json.dumps([batch_id, outcome.to_dict()])
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("outcomes"), batch_id, payload)
            pipe.hdel(self.key("started"), batch_id)
            pipe.rpush(self.key("finished"), payload)
            for part in ("outcomes", "finished"):
                pipe.expire(self.key(part), self.ttl_s)
            pipe.execute()

    def finished(self, timeout_s: float) -> list[tuple[str, BatchOutcome]]:
        """Outcomes recorded since the last call, waiting up to `timeout_s` for the first one."""
        first = self.client.blpop([self.key("finished")], timeout=timeout_s)
        if first is None:
            return []
        rest = self.client.lpop(self.key("finished"), 1000) or []
        decoded = [json.loads(item) for item in (first[1], *rest)]
        return [(batch_id, BatchOutcome.from_dict(outcome)) for batch_id, outcome in decoded]

    def held(self) -> dict[str, Hold]:
        """The batches begun and not finished, by batch id; those begun by a worker of an earlier version,
        which wrote the time alone and no name, are left out (during a rolling upgrade)."""
        started: dict[str, str] = self.client.hgetall(self.key("started"))  # type: ignore[assignment]
        entries = {batch_id: json.loads(value) for batch_id, value in started.items()}
        return {batch_id: Hold(*entry) for batch_id, entry in entries.items() if isinstance(entry, list)}

    def snapshot(self) -> LedgerSnapshot:
        with self.client.pipeline() as pipe:
            pipe.hvals(self.key("batches"))
            pipe.hlen(self.key("started"))
            pipe.hvals(self.key("outcomes"))
            pipe.get(self.key("started_at"))
            sizes, started, outcomes, started_at = pipe.execute()
        results = [BatchOutcome.from_dict(json.loads(item)[1]) for item in outcomes]
        return LedgerSnapshot(
            batches=len(sizes),
            documents=sum(int(size) for size in sizes) - sum(sum(r.split.values()) for r in results),
            started=started,
            done=len(results),
            indexed=sum(r.indexed for r in results),
            started_at=float(started_at) if started_at else None,
        )
