"""The service's knobs (env `NEURANK_SERVE_*`), apart from the index's Settings: how many searches run at once,
how long one may take, how query encodings are batched and cached, and the API key."""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from neurank.config import validated
from neurank.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class ServeOptions(BaseSettings):
    """Bounded by construction: beyond `max_in_flight` a request is refused at once (429), never queued."""

    model_config = SettingsConfigDict(env_prefix="NEURANK_SERVE_", extra="ignore")

    max_in_flight: int = Field(default=16, ge=1, le=1024, description="searches running at once; more get 429")
    deadline_ms: float = Field(default=10_000.0, gt=0, description="a search that takes longer is answered 504")
    batch_size: int = Field(default=16, ge=1, le=256,
                            description="most query texts per encoder call across requests; 1 turns batching off")
    cache_size: int = Field(default=4096, ge=0, description="query encodings kept (LRU); 0 turns the cache off")
    max_query_chars: int = Field(default=1000, ge=1, description="a longer query is refused with 422")
    retry_after_s: int = Field(default=1, ge=1, description="the Retry-After of a 429 or 503")
    keep_alive_s: int = Field(
        default=65, ge=1, description="how long an idle connection stays open: longer than clients and proxies "
        "keep theirs (httpx 5 s, nginx and load balancers 60 s), so that the server never closes a connection "
        "just as a client sends a request on it")
    malloc_arenas: int = Field(
        default=2, ge=0, le=1024, description="glibc malloc arenas (MALLOC_ARENA_MAX, which wins when set): each "
        "search thread would otherwise get its own and keep its freed memory there; 0 keeps glibc's default")
    gc_freeze: bool = Field(
        default=True, description="after the warm-up, leave what is loaded (models, vocabularies, the index's "
        "structures) out of Python's garbage collections: a full collection would walk it with every search "
        "stopped")
    api_key: SecretStr | None = Field(default=None, description="required (X-API-Key or Bearer) when set")
    fusion_model: str | None = Field(
        default=None, description="a learned fusion folder (`neurank train fusion`): what a request's "
                                  "fusion 'learned' uses; requests never name folders themselves")

    @property
    def batching(self) -> bool:
        return self.batch_size > 1


def load_options(**overrides: Any) -> ServeOptions:
    """NEURANK_SERVE_* with `overrides` (CLI flags) on top; a bad value is one `ConfigError` naming it."""
    return validated(ServeOptions, "NEURANK_SERVE_", {key: value for key, value in overrides.items()
                                                      if value is not None})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the service on this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, options: ServeOptions) -> None:
    """Anything reachable from another machine needs an API key: refuse to start without one."""
    if not is_loopback(host) and (options.api_key is None or not options.api_key.get_secret_value()):
        raise ConfigError(f"binding {host!r} exposes the service beyond this machine: set NEURANK_SERVE_API_KEY "
                          "(clients send it as X-API-Key or 'Authorization: Bearer …'), or bind 127.0.0.1")
