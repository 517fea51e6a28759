"""elasticsearch-py exceptions sorted into the engine-neutral `Failure`s of `neurank.stores.cluster.errors`.

elasticsearch-py 8 / 9 raise `ApiError` subclasses for an answer with an error status (the body in `.body`), and
elastic-transport's `TransportError`s for a request that got no answer (`TlsError`, `ConnectionError`,
`ConnectionTimeout`).
"""

from __future__ import annotations

from elastic_transport import ConnectionError, ConnectionTimeout, SerializationError, TlsError, TransportError
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, UnsupportedProductError

from neurank.errors import NeurankError
from neurank.stores.cluster.errors import Failure, cluster_error

__all__ = ["CLIENT_ERRORS", "failure", "store_error"]

CLIENT_ERRORS: tuple[type[Exception], ...] = (ApiError, TransportError, SerializationError)
"""What the client raises (and `failure` sorts)."""


def failure(exc: Exception) -> Failure:
    """What went wrong, for `cluster_error`; TypeError for an exception elasticsearch-py does not raise."""
    if isinstance(exc, AuthenticationException):
        return Failure("credentials", 401, exc.body)
    if isinstance(exc, AuthorizationException):
        return Failure("permission", 403, exc.body)
    if isinstance(exc, UnsupportedProductError):
        return Failure("other", info=f"the server is not Elasticsearch ({exc.message}); set NEURANK_ENGINE")
    if isinstance(exc, ApiError):
        return Failure("status", exc.meta.status, exc.body)
    if isinstance(exc, TlsError):
        return Failure("tls", info=exc.message)
    if isinstance(exc, ConnectionError | ConnectionTimeout):
        return Failure("connection", info=f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, TransportError | SerializationError):
        return Failure("other", info=exc)
    raise TypeError(f"not an elasticsearch-py error: {exc!r}")


def store_error(exc: Exception, *, url: str, index: str | None = None) -> NeurankError:
    """The neurank error for an elasticsearch-py exception raised while talking to `url` (about `index`)."""
    return cluster_error(failure(exc), url=url, index=index)
