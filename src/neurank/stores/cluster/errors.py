"""Errors of either engine's client → neurank errors, in one place, by what the caller does next.

Each engine's `errors` module sorts its client's exceptions into a `Failure` (what kind, which status, the
response body); `cluster_error` turns that into the neurank error:
- 401 / 403 and TLS failures: `ConfigError` naming the setting to fix (the password is never echoed).
- 404 on an index: `IndexNotFoundError`.
- connection errors, timeouts, 429 and 5xx: `StoreUnavailableError` (transient: retry with backoff).
- any other 4xx: `StoreError` carrying the engine's root cause (final: fix the request or the data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from neurank.errors import ConfigError, IndexNotFoundError, NeurankError, StoreError, StoreUnavailableError

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
"""Item or request statuses a later retry can cure (rejected execution, node or shard unavailable)."""

CREDENTIALS = "NEURANK_OPENSEARCH_USER and NEURANK_OPENSEARCH_PASSWORD (or NEURANK_OPENSEARCH_API_KEY)"
"""The settings that hold a cluster's credentials, for either engine."""

FailureKind = Literal["credentials", "permission", "tls", "connection", "status", "other"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A client exception as the engine-neutral facts `cluster_error` needs."""

    kind: FailureKind
    status: object = None
    info: object = None
    """The response body (or the transport's detail for a connection or TLS failure)."""


def is_transient(status: object) -> bool:
    """A retryable status: 429, 5xx, or 'N/A' (the request never got an answer)."""
    return status == "N/A" or status in TRANSIENT_STATUS or (isinstance(status, int) and status >= 500)


def error_reason(error: object) -> str:
    """An engine's error object as one line: `type: reason`, then each `caused_by`, outermost first."""
    if not isinstance(error, Mapping):
        return str(error)
    parts = []
    node: Any = error
    while isinstance(node, Mapping):
        kind, reason = node.get("type"), node.get("reason")
        parts.append(f"{kind}: {reason}" if kind and reason else str(reason or kind or node))
        node = node.get("caused_by")
    return "; caused by ".join(parts)


def root_cause(info: object) -> str:
    """The most specific reason in an error response body (`root_cause`, else the error chain)."""
    if not isinstance(info, Mapping):
        return str(info)
    error = info.get("error", info)
    if isinstance(error, Mapping):
        causes = error.get("root_cause")
        if isinstance(causes, list) and causes and isinstance(causes[0], Mapping):
            deepest = error_reason(causes[0])
            outer = error_reason({k: v for k, v in error.items() if k != "caused_by"})
            return outer if deepest == outer else f"{outer} (root cause {deepest})"
    return error_reason(error)


def error_type(info: object) -> str | None:
    """The `error.type` of a response body, if it has one."""
    if isinstance(info, Mapping) and isinstance(info.get("error"), Mapping):
        kind = info["error"].get("type")
        return kind if isinstance(kind, str) else None
    return None


def cluster_error(failure: Failure, *, url: str, index: str | None = None) -> NeurankError:
    """The neurank error for a failed request to `url` (about `index`)."""
    where = f"{url}" + (f" (index {index!r})" if index else "")
    if failure.kind == "credentials":
        return ConfigError(f"{where} rejected the credentials (401): check {CREDENTIALS}")
    if failure.kind == "permission":
        return ConfigError(
            f"{where} refused the operation (403: {root_cause(failure.info)}): give the user in "
            "NEURANK_OPENSEARCH_USER the index and cluster permissions neurank needs, or use another user"
        )
    if failure.kind == "tls":
        return ConfigError(
            f"TLS handshake with {url} failed ({failure.info}): set NEURANK_OPENSEARCH_CA_CERTS to the cluster's "
            "CA bundle (or NEURANK_OPENSEARCH_VERIFY_CERTS=false for a test cluster)"
        )
    if failure.kind == "connection":
        return StoreUnavailableError(f"cannot reach {url} ({failure.info}); retry later")
    if failure.kind == "status":
        status = failure.status
        if status == 404 and index is not None and error_type(failure.info) == "index_not_found_exception":
            return IndexNotFoundError(index, url)
        if is_transient(status):
            return StoreUnavailableError(f"{where} answered {status} ({root_cause(failure.info)}); retry later")
        return StoreError(f"{where} refused the request ({status}): {root_cause(failure.info)}")
    return StoreError(f"{where}: {failure.info}")
