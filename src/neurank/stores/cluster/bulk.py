"""`_bulk` writes with one outcome per item: written, failed for good (with the reason), or retried.

Items go through the engine client's `helpers.streaming_bulk` (opensearch-py's and elasticsearch-py's take the
same arguments and yield the same per-item results; a `BulkDriver` names the engine's), chunked by count and by
bytes, which resends items rejected with 429 (`max_retries`, backoff doubling from `initial_backoff_s` up to
`max_backoff_s`). What is still transient after that — 429, 5xx, a chunk that got no answer — is sent again by
`write`, after a backoff with full jitter, at most `attempts` rounds; then `StoreUnavailableError` (the caller
retries later; writes are idempotent by id). A 4xx item is final: it is reported with the cluster's reason and
never retried. (elasticsearch-py's helper raises a connection error instead of reporting it per item; the store
maps it to StoreUnavailableError.)

A request the cluster refuses as a whole with a 4xx (one id over 512 bytes fails the validation of the whole
`_bulk`) blames no item: its items are sent again in halves until the items that cause it are alone. Those
fail with the cluster's reason; the rest is written.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from neurank.errors import StoreUnavailableError
from neurank.stores.cluster.errors import Failure, error_reason, is_transient, root_cause

_CONFIG_FAILURES = ("credentials", "permission", "tls")
"""A chunk that failed for one of these fails the write at once: no retry and no per-item blame cures them."""

Action = dict[str, Any]
"""One `streaming_bulk` action: `_op_type`, `_index`, `_id` and, for `index`, `_source`."""


@dataclass(frozen=True, slots=True)
class BulkPolicy:
    chunk_size: int = 500
    max_chunk_bytes: int = 8 * 1024 * 1024
    """A 384-dim embedding is ~8 KB of JSON, SPLADE weights a few KB more: ~500 documents per 8 MiB."""
    max_retries: int = 3
    """streaming_bulk's own resends of items rejected with 429."""
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    attempts: int = 4
    """Rounds of `write`; items still transient after the last one make the write fail as unavailable."""


DEFAULT_POLICY = BulkPolicy()


@dataclass(frozen=True, slots=True)
class BulkDriver:
    """One engine's bulk helper, and how to read the exception it attaches to the items of a failed request."""

    streaming_bulk: Callable[..., Iterable[tuple[bool, dict[str, Any]]]]
    failure: Callable[[Exception], Failure]
    """The engine's exception → Failure (`neurank.stores.<engine>.errors.failure`)."""


@dataclass(slots=True)
class BulkOutcome:
    """Per item, by position in the actions given: the item's response (2xx), or its final failure."""

    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    """position → reason (a 4xx: retrying will not help)."""
    not_found: set[int] = field(default_factory=set)
    """Deletes of ids that did not exist (404, not a failure)."""


def backoff_s(round_: int, policy: BulkPolicy, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(max_backoff, initial · 2^round)], so retrying clients spread out."""
    return rng() * min(policy.max_backoff_s, policy.initial_backoff_s * 2**round_)


def _item_status(item: dict[str, Any]) -> object:
    return item.get("status", "N/A")


def _item_reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, str):
        return error
    return error_reason(error) if error is not None else f"status {_item_status(item)}"


def _refusal(failure: Failure | None) -> str | None:
    """Why the cluster refused the whole request that held an item (a 4xx answer to `_bulk` itself), if it did."""
    if failure is not None and failure.kind == "status" and not is_transient(failure.status):
        return f"the cluster refused the request ({failure.status}): {root_cause(failure.info)}"
    return None


def write(
    client: Any,
    actions: Sequence[Action],
    driver: BulkDriver,
    policy: BulkPolicy = DEFAULT_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> BulkOutcome:
    """Run `actions`; return what happened to each.

    Raises StoreUnavailableError when retries run out, and the client's own exception when a chunk failed for
    credentials, permissions or TLS (the caller maps it to a ConfigError): no retry and no per-item blame cures
    those.
    """
    outcome = BulkOutcome()
    pending = list(range(len(actions)))
    last_reason = ""
    for round_ in range(policy.attempts):
        if round_:
            sleep(backoff_s(round_ - 1, policy, rng))
        transient = []
        refused: dict[int, str] = {}
        positions: dict[tuple[str, str], deque[int]] = defaultdict(deque)
        for i in pending:
            positions[(actions[i].get("_op_type", "index"), str(actions[i]["_id"]))].append(i)
        results = driver.streaming_bulk(
            client,
            (actions[i] for i in pending),
            chunk_size=policy.chunk_size,
            max_chunk_bytes=policy.max_chunk_bytes,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=policy.max_retries,
            initial_backoff=policy.initial_backoff_s,
            max_backoff=policy.max_backoff_s,
        )
        # One result per action, but not in order: items resent after a 429 come after their chunk-mates.
        for ok, result in results:
            ((op_type, item),) = result.items()
            exc = item.get("exception")
            failure = driver.failure(exc) if isinstance(exc, Exception) else None
            if isinstance(exc, Exception) and failure is not None and failure.kind in _CONFIG_FAILURES:
                raise exc
            position = positions[(op_type, str(item["_id"]))].popleft()
            status = _item_status(item)
            refusal = None if ok else _refusal(failure)
            if ok:
                outcome.done[position] = item
            elif refusal is not None:
                refused[position] = refusal
            elif op_type == "delete" and status == 404:
                outcome.not_found.add(position)
            elif is_transient(status) or (failure is not None and failure.kind == "connection"):
                # a chunk that timed out carries status "TIMEOUT": no answer, so retry it like one
                transient.append(position)
                last_reason = _item_reason(item)
            else:
                outcome.failed[position] = _item_reason(item)
        _isolate(client, actions, refused, outcome, driver, policy, sleep=sleep, rng=rng)
        if not transient:
            return outcome
        pending = transient
    raise StoreUnavailableError(
        f"{len(pending)} of {len(actions)} bulk items still failed after {policy.attempts} rounds "
        f"(last: {last_reason}); retry later"
    )


def _isolate(client: Any, actions: Sequence[Action], refused: dict[int, str], outcome: BulkOutcome,
             driver: BulkDriver, policy: BulkPolicy, *, sleep: Callable[[float], None],
             rng: Callable[[], float]) -> None:
    """Settle the items of requests refused as a whole: one alone takes the refusal; more are written again
    in halves, so that only the items that cause the refusal fail (about 2·log2(n) requests per culprit)."""
    if len(refused) <= 1:
        outcome.failed.update(refused)
        return
    group = sorted(refused)
    middle = len(group) // 2
    for half in (group[:middle], group[middle:]):
        part = write(client, [actions[i] for i in half], driver, policy, sleep=sleep, rng=rng)
        outcome.done.update({half[i]: item for i, item in part.done.items()})
        outcome.failed.update({half[i]: reason for i, reason in part.failed.items()})
        outcome.not_found.update(half[i] for i in part.not_found)
