"""Talking to Kibana or OpenSearch Dashboards: one small HTTP client on the standard library.

Credentials go in headers only (basic auth or `ApiKey`), never in the URL or in a message; every error names
the URL without them and says what to check.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from neurank.config import Settings
from neurank.errors import ConfigError, StoreError, StoreUnavailableError, redact


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Connection:
    """Where Kibana / Dashboards listens and how to log in; building one does no I/O."""

    url: str
    user: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"dashboards URL {redact(self.url)!r} is not an http(s)://host:port URL of Kibana or "
                              "OpenSearch Dashboards")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"dashboards URL {redact(self.url)!r} carries credentials; give them in "
                              "NEURANK_DASHBOARDS_USER and NEURANK_DASHBOARDS_PASSWORD (or an API key) instead")
        if parts.query or parts.fragment:
            raise ConfigError(f"dashboards URL {redact(self.url)!r} has a query or fragment; give the base URL only "
                              "(a Kibana space as /s/<space>)")
        if (self.user is None) != (self.password is None):
            raise ConfigError("give both a dashboards user and a password, or neither")
        if self.timeout_s <= 0:
            raise ConfigError(f"the dashboards timeout must be above 0 s, got {self.timeout_s:g}")

    @classmethod
    def from_settings(cls, settings: Settings, url: str) -> Connection:
        """The dashboards settings, falling back to the store's credentials and CA bundle (same cluster users)
        where none of the dashboards' own are given."""
        user, password, api_key = settings.dashboards_user, settings.dashboards_password, settings.dashboards_api_key
        if user is None and password is None and api_key is None:
            user, password = settings.opensearch_user, settings.opensearch_password
            api_key = settings.opensearch_api_key
        return cls(url=url, user=user, password=password, api_key=api_key,
                   ca_certs=settings.dashboards_ca_certs or settings.opensearch_ca_certs,
                   verify_certs=settings.dashboards_verify_certs, timeout_s=settings.dashboards_timeout_s)

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> Response:
        """The answer to one request, whatever its status; StoreUnavailableError when nothing answers."""
        request = urllib.request.Request(self.url.rstrip("/") + path, data=body, method=method,
                                         headers={**self._auth(), **(headers or {})})
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self._tls()))
        try:
            with opener.open(request, timeout=self.timeout_s) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnavailableError(f"{method} {self.shown(path)} failed: {redact(str(reason))}; check that "
                                        "the URL is right and Kibana / Dashboards is up") from exc

    def shown(self, path: str = "") -> str:
        return redact(self.url.rstrip("/") + path)

    def _auth(self) -> dict[str, str]:
        if self.api_key is not None:
            return {"Authorization": f"ApiKey {self.api_key.get_secret_value()}"}
        if self.user is not None and self.password is not None:
            token = base64.b64encode(f"{self.user}:{self.password.get_secret_value()}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_certs) if self.ca_certs else None)
        if not self.verify_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered, not followed: it would carry the credentials to another URL, and from Kibana it
    means a wrong base path or a login page, which the caller reports."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def refused(response: Response, what: str, connection: Connection, path: str) -> StoreError:
    """The error for a 4xx / 5xx answer, with the server's own message (redacted) and what to check."""
    payload = response.json()
    message = payload.get("message") if isinstance(payload, dict) else None
    detail = redact(str(message or response.body[:200].decode("utf-8", "replace").strip() or "no message"))
    where = f"{what} at {connection.shown(path)} answered {response.status}: {detail}"
    if 300 <= response.status < 400:
        return StoreError(f"{where}; it redirects to {redact(response.headers.get('Location', '?'))}: check the URL "
                          "(Kibana's server.basePath, a space /s/<space>) and the credentials")
    if response.status in (401, 403):
        return StoreError(f"{where}; check NEURANK_DASHBOARDS_USER / NEURANK_DASHBOARDS_PASSWORD or "
                          "NEURANK_DASHBOARDS_API_KEY, and that the user may manage saved objects")
    if response.status >= 500 or response.status == 429:
        return StoreUnavailableError(f"{where}; retry later")
    return StoreError(where)
