"""opensearch-py exceptions sorted into the engine-neutral `Failure`s of `neurank.stores.cluster.errors`."""

from __future__ import annotations

from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    OpenSearchException,
    SSLError,
    TransportError,
)

from neurank.errors import NeurankError
from neurank.stores.cluster.errors import Failure, cluster_error

__all__ = ["failure", "store_error"]


def failure(exc: Exception) -> Failure:
    """What went wrong, for `cluster_error`; TypeError for an exception opensearch-py does not raise."""
    if isinstance(exc, AuthenticationException):
        return Failure("credentials", 401, exc.info)
    if isinstance(exc, AuthorizationException):
        return Failure("permission", 403, exc.info)
    if isinstance(exc, SSLError):
        return Failure("tls", info=exc.info)
    if isinstance(exc, ConnectionError):
        return Failure("connection", info=f"{type(exc.info).__name__}: {exc.info}")
    if isinstance(exc, TransportError):
        return Failure("status", exc.status_code, exc.info)
    if isinstance(exc, OpenSearchException):
        return Failure("other", info=exc)
    raise TypeError(f"not an opensearch-py error: {exc!r}")


def store_error(exc: Exception, *, url: str, index: str | None = None) -> NeurankError:
    """The neurank error for an opensearch-py exception raised while talking to `url` (about `index`)."""
    return cluster_error(failure(exc), url=url, index=index)
