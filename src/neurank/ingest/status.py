"""`neurank ingest status`: where the latest queued ingest of an index stands, read from the run records alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from neurank.config import Settings
from neurank.ingest.dead_letters import DeadLetters
from neurank.ingest.ledger import Ledger, connect_ledger, namespace


@dataclass(frozen=True, slots=True)
class IngestStatus:
    """Batches of the latest run by state, its documents, and the index's dead letters."""

    store: str
    index: str
    run: str | None
    started_at: str | None
    """ISO 8601, UTC."""
    queued: int
    """Batches sent and not begun by any worker."""
    in_flight: int
    """Batches a worker began and has not finished (a batch whose worker died counts here until redelivered)."""
    done: int
    documents: int
    indexed: int
    dead: int
    """Documents in the dead letters of this index, from any run."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_status(settings: Settings) -> IngestStatus:
    from neurank.stores import open_store

    store_url = open_store(settings).url
    client = connect_ledger(settings.ledger_redis_url())
    prefix = namespace(store_url, settings.index)
    dead = len(DeadLetters(client, prefix))
    ledger = Ledger.latest(client, prefix, settings.ingest_options().ledger_ttl_s)
    if ledger is None:
        return IngestStatus(store=store_url, index=settings.index, run=None, started_at=None, queued=0,
                            in_flight=0, done=0, documents=0, indexed=0, dead=dead)
    snapshot = ledger.snapshot()
    return IngestStatus(
        store=store_url, index=settings.index, run=ledger.run_id,
        started_at=None if snapshot.started_at is None else
        datetime.fromtimestamp(snapshot.started_at, UTC).isoformat(timespec="seconds"),
        queued=snapshot.batches - snapshot.done - snapshot.started, in_flight=snapshot.started,
        done=snapshot.done, documents=snapshot.documents, indexed=snapshot.indexed, dead=dead,
    )
