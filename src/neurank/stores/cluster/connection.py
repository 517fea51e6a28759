"""The connection settings both engines' clients take, read and checked once: TLS, basic auth or an API key, the
CA bundle, the timeout. Each engine's store turns them into its client's keywords."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neurank.config import Settings
from neurank.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Connection:
    """What to connect with; `repr` leaves the secrets out."""

    url: str
    timeout_s: float
    verify_certs: bool
    ca_certs: str | None
    basic_auth: tuple[str, str] | None
    api_key: str | None

    def __repr__(self) -> str:
        auth = "basic" if self.basic_auth else "api key" if self.api_key else "none"
        return f"Connection({self.url!r}, auth={auth}, verify_certs={self.verify_certs}, ca_certs={self.ca_certs!r})"


def connection(url: str, settings: Settings) -> Connection:
    """The connection to `url` from Settings; a ConfigError names the setting that is incomplete or wrong."""
    user, password, api_key = settings.opensearch_user, settings.opensearch_password, settings.opensearch_api_key
    if (user is None) != (password is None):
        missing = "NEURANK_OPENSEARCH_PASSWORD" if password is None else "NEURANK_OPENSEARCH_USER"
        raise ConfigError(f"basic auth needs both NEURANK_OPENSEARCH_USER and NEURANK_OPENSEARCH_PASSWORD; "
                          f"set {missing}")
    if user is not None and api_key is not None:
        raise ConfigError("give either NEURANK_OPENSEARCH_USER / NEURANK_OPENSEARCH_PASSWORD or "
                          "NEURANK_OPENSEARCH_API_KEY, not both")
    ca_certs = settings.opensearch_ca_certs
    if ca_certs is not None and not ca_certs.is_file():
        raise ConfigError(f"NEURANK_OPENSEARCH_CA_CERTS={ca_certs} is not a file")
    return Connection(
        url=url,
        timeout_s=settings.opensearch_timeout_s,
        verify_certs=settings.opensearch_verify_certs,
        ca_certs=None if ca_certs is None else str(ca_certs),
        basic_auth=None if user is None or password is None else (user, password.get_secret_value()),
        api_key=None if api_key is None else api_key.get_secret_value(),
    )


def client_options(conn: Connection, *, timeout: str, basic_auth: str) -> dict[str, Any]:
    """The options both clients take under the same names, plus the timeout and basic auth under the client's own
    names (no retries here: bulk writes retry with backoff themselves, callers retry a StoreUnavailableError)."""
    options: dict[str, Any] = {
        "hosts": [conn.url],
        timeout: conn.timeout_s,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": conn.verify_certs,
        "ssl_show_warn": conn.verify_certs,
    }
    if conn.basic_auth is not None:
        options[basic_auth] = conn.basic_auth
    if conn.ca_certs is not None:
        options["ca_certs"] = conn.ca_certs
    return options
