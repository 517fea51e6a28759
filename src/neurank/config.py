"""One Settings object, read from `NEURANK_*` environment variables; CLI flags override its fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from neurank.errors import ConfigError, PlanError, redact
from neurank.index_spec import MAX_NGRAM, MIN_NGRAM, TokenCompression
from neurank.retrieval import MAX_EXPANSIONS, Fuzzy

Runtime = Literal["torch", "onnx"]
"""What runs the encoders: PyTorch, or ONNX Runtime on exported graphs."""
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
"""Where a model runs (`neurank.onnx_models.devices`)."""
_Model = TypeVar("_Model", bound=BaseSettings)
STORE_URL_FORMS = ("local:PATH (a folder for the embedded store) or http(s)://host:port (an OpenSearch or "
                   "Elasticsearch cluster)")
Engine = Literal["opensearch", "elasticsearch"]
"""The search engine behind an http(s) store URL."""
License = Literal["basic", "gold", "platinum", "enterprise", "trial"]
"""Elasticsearch licence levels, lowest first (trial has every feature)."""
REDIS_SCHEMES = ("redis", "rediss")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
BROKER_URL_FORMS = "redis://host:port/db (Redis) or amqp://user:password@host:port/vhost (RabbitMQ)"


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("neurank"))


class IngestOptions(BaseSettings):
    """Knobs of queued ingestion (Celery), read from `NEURANK_INGEST_*` environment variables."""

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
    worker_wait_s: float = Field(default=60.0, gt=0,
                                 description="a producer whose batches see no progress this long checks for live "
                                             "workers, and stops when none consumes its queue")
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


class Settings(BaseSettings):
    """Everything configurable. Secrets are `SecretStr`: they never reach logs, messages or task payloads."""

    model_config = SettingsConfigDict(env_prefix="NEURANK_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="data dir: local stores, exports cache")
    store: str | None = Field(default=None, description="local:PATH or http(s)://host:port")
    index: str = "neurank"
    language: str = Field(default="english", description="text analyzer: english or russian")

    sparse_model: str = "splade-tiny"
    deepct: bool = Field(default=True, description="also index DeepCT weights (the text's own terms)")
    dense_model: str = "minilm-l6"
    rerank_model: str | None = Field(default=None, description="cross-encoder folder for the rerank stage")
    rerank_max_length: int | None = Field(
        default=None, ge=1, description="tokens per (query, passage) pair; None: the length the model was trained at")
    rerank_first_stage_weight: float | None = Field(
        default=None, ge=0.0, lt=1.0,
        description="share of the first-stage score in a reranked hit's score (0: the cross-encoder alone); "
                    "None: the model's calibration (its rerank.json), else 0")
    rerank_normalization: str = Field(default="min_max", description="how both rerank scores are normalized")
    rerank_int8: bool | None = Field(
        default=None, description="run the cross-encoder's int8 export; None: as `int8` says (a cross-encoder "
                                  "loses more to int8 than the encoders do, see docs/BENCHMARKS.md)")
    duo_model: str | None = Field(
        default=None, description="pairwise (duoBERT) model folder for the duo stage, run at the rerank's precision")
    colbert_model: str | None = Field(
        default=None, description="late-interaction (ColBERT) model folder; None or 'none': no token vectors")
    colbert_query_length: int = Field(default=32, ge=4, description="query tokens, padded with [MASK] to this")
    colbert_document_length: int = Field(default=180, ge=4, description="document tokens kept at most (cuts counted)")
    token_compression: TokenCompression = Field(
        default="float16", description="how the local store keeps token vectors: float16, int8 or binary (1 bit)")
    runtime: Runtime = Field(default="onnx", description="torch or onnx")
    int8: bool = True
    max_length: int = 256
    batch_tokens: int = 4096
    device: str = Field(default="cpu", description="where the encoders run: cpu, cuda, cuda:N, or auto (a CUDA "
                                                  "GPU when there is one); torch: its CUDA build; onnx: ONNX "
                                                  "Runtime's CUDA execution provider (onnxruntime-gpu)")
    threads: int | None = Field(default=None, ge=1,
                                description="encoder threads per process (torch and ONNX Runtime); None: all cores")

    local_busy_timeout_s: float = Field(
        default=60.0, gt=0, description="local store: how long a writer waits for another's lock before giving up")

    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    fuzziness: str | None = Field(
        default=None, description="BM25 matches query terms fuzzily: AUTO, AUTO:low,high, 0, 1 or 2 edits; None: "
                                  "exactly")
    fuzzy_prefix_length: int = Field(default=0, ge=0, description="leading characters a fuzzy match keeps as typed")
    fuzzy_max_expansions: int = Field(default=50, ge=1, le=MAX_EXPANSIONS,
                                      description="index terms a fuzzy query term expands to, at most")
    fuzzy_transpositions: bool = Field(default=True, description="a swap of adjacent characters is one edit")
    ngram: int = Field(default=0, description=f"new indexes: character n-grams of this size in a `content.ngram` "
                                              f"subfield ({MIN_NGRAM}-{MAX_NGRAM}; 0: none)")
    ngram_match: bool = Field(default=False, description="BM25 also matches the query's n-grams (needs `ngram`)")
    spelling: bool = Field(default=False, description="correct query words the index does not know (one edit "
                                                       "away) before every stage")

    engine: Engine | None = Field(
        default=None, description="the engine behind an http(s) store URL; None: ask it once (GET /)")
    expansion_terms: int = Field(
        default=20, ge=0, description="top expansion terms kept per document in the `expansion_terms` keyword "
                                      "field (Kibana / Dashboards); 0: none")

    # Connection settings of either engine's cluster (OpenSearch or Elasticsearch).
    opensearch_user: str | None = None
    opensearch_password: SecretStr | None = None
    opensearch_api_key: SecretStr | None = Field(default=None, description="Elasticsearch API key (base64 id:key)")
    opensearch_ca_certs: Path | None = None
    opensearch_verify_certs: bool = True
    opensearch_timeout_s: float = 30.0
    opensearch_neural_plugin: bool | None = Field(
        default=None, description="the cluster has neural-search (hybrid, neural_sparse); None: ask it once"
    )
    opensearch_late_interaction: bool | None = Field(
        default=None, description="the cluster has k-NN's lateInteractionScore (k-NN 3.3+); None: ask it once"
    )

    elasticsearch_license: License | None = Field(
        default=None, description="the cluster's licence; None: ask it once (GET _license; none answers: basic)")
    elasticsearch_num_candidates: int | None = Field(
        default=None, ge=1, le=10_000, description="knn num_candidates per shard; None: max(100, 1.5·k)")
    elasticsearch_dense_index_options: dict[str, Any] | None = Field(
        default=None, description='dense_vector index_options as JSON (e.g. {"type": "hnsw"}); None: the default')

    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description=BROKER_URL_FORMS)
    ledger_url: str | None = Field(
        default=None, description="Redis for run records and dead letters; None: the broker's, when it is Redis")
    ingest: IngestOptions | None = Field(
        default=None, description="queued-ingestion knobs; None: read from NEURANK_INGEST_* by `ingest_options()`")

    # Kibana / OpenSearch Dashboards, for `neurank dashboards install`
    dashboards_user: str | None = Field(
        default=None, description="Kibana / OpenSearch Dashboards user; None: the store's (NEURANK_OPENSEARCH_USER)")
    dashboards_password: SecretStr | None = None
    dashboards_api_key: SecretStr | None = Field(
        default=None, description="sent as `Authorization: ApiKey …` (Kibana) instead of a user and password")
    dashboards_ca_certs: Path | None = Field(default=None, description="None: the store's CA bundle")
    dashboards_verify_certs: bool = True
    dashboards_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("store")
    @classmethod
    def _store_url_is_usable(cls, url: str | None) -> str | None:
        if url is not None:
            check_store_url(url)
        return url

    @field_validator("fuzziness")
    @classmethod
    def _fuzziness_is_known(cls, fuzziness: str | None) -> str | None:
        if fuzziness is None or fuzziness.strip().lower() in {"", "none"}:
            return None
        try:
            return Fuzzy(fuzziness).fuzziness
        except PlanError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, device: str) -> str:
        if not DEVICE.fullmatch(device):
            raise ValueError(f"unknown device {device!r}; use {DEVICE_NAMES}")
        return device

    @field_validator("ngram")
    @classmethod
    def _ngram_size_is_usable(cls, size: int) -> int:
        if size != 0 and not MIN_NGRAM <= size <= MAX_NGRAM:
            raise ValueError(f"n-grams of {size} characters: use 0 (none) or a size in [{MIN_NGRAM}, {MAX_NGRAM}]")
        return size

    @field_validator("broker_url")
    @classmethod
    def _broker_url_is_usable(cls, url: str) -> str:
        if broker_kind(url) is None:
            raise ValueError(f"unsupported broker URL {redact(url)!r}; expected {BROKER_URL_FORMS}")
        return url

    @field_validator("ledger_url")
    @classmethod
    def _ledger_url_is_redis(cls, url: str | None) -> str | None:
        if url is not None and broker_kind(url) != "redis":
            raise ValueError(f"{redact(url)!r} is not a Redis URL; run records and dead letters live in Redis "
                             "(redis://host:port/db)")
        return url

    def ledger_redis_url(self) -> str:
        """The Redis that holds run records and dead letters: NEURANK_LEDGER_URL, else a Redis broker itself."""
        if self.ledger_url is not None:
            return self.ledger_url
        if broker_kind(self.broker_url) == "redis":
            return self.broker_url
        raise ConfigError(f"the broker {redact(self.broker_url)} is not Redis: set NEURANK_LEDGER_URL to a Redis "
                          "(redis://host:port/db) for run records and dead letters, the same for workers and producer")

    def store_url(self) -> str:
        """The store to use: the configured one, else a local store under `home`."""
        return self.store or f"local:{self.home / 'store'}"

    def fuzzy(self) -> Fuzzy | None:
        """The fuzzy options of the bm25 stage; None when `fuzziness` is unset (terms match exactly)."""
        if self.fuzziness is None:
            return None
        return Fuzzy(self.fuzziness, self.fuzzy_prefix_length, self.fuzzy_max_expansions, self.fuzzy_transpositions)

    def ingest_options(self) -> IngestOptions:
        """The queued-ingestion knobs, read and checked only here, so a bad one stops only the commands that use it."""
        return self.ingest if self.ingest is not None else validated(IngestOptions, "NEURANK_INGEST_", {})


def check_store_url(url: str) -> None:
    """Refuse a store URL that is neither form of `STORE_URL_FORMS`, or that carries credentials.

    Raises ValueError (pydantic turns it into a validation error naming NEURANK_STORE); every message is
    redacted, since the URL may hold a password.
    """
    if url.startswith("local:"):
        if not url.removeprefix("local:").strip():
            raise ValueError(f"store URL {url!r} names no folder; expected {STORE_URL_FORMS}")
        return
    shown = redact(url)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"unsupported store URL {shown!r}; expected {STORE_URL_FORMS}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError as exc:
        raise ValueError(f"malformed store URL {shown!r} ({exc}); expected {STORE_URL_FORMS}") from None
    if not parts.hostname:
        raise ValueError(f"store URL {shown!r} names no host; expected {STORE_URL_FORMS}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"store URL {shown!r} carries credentials; give them in NEURANK_OPENSEARCH_USER and "
                         "NEURANK_OPENSEARCH_PASSWORD instead")


def broker_kind(url: str) -> Literal["redis", "amqp"] | None:
    """Which broker a URL names, from its scheme; None for any other."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return "redis"
    return "amqp" if scheme in AMQP_SCHEMES else None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (`NEURANK_*`), with `overrides` (CLI flags) on top; `None` overrides nothing.

    An invalid value raises one `ConfigError` naming the variable or flag, instead of pydantic's report.
    """
    return validated(Settings, "NEURANK_", {key: value for key, value in overrides.items() if value is not None})


def validated(model: type[_Model], env_prefix: str, given: dict[str, Any]) -> _Model:
    """`model` from the environment under `env_prefix` and `given` values; one `ConfigError` naming each bad one."""
    try:
        return model(**given)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error, env_prefix, given) for error in exc.errors())) from None


def _describe(error: Any, env_prefix: str, given: dict[str, Any]) -> str:
    """`NEURANK_THREADS='0': must be ≥ 1`-style text for one pydantic error; secrets are never echoed."""
    field = str(error["loc"][0]) if error["loc"] else ""
    where = f"--{field.replace('_', '-')}" if field in given else f"{env_prefix}{field.upper()}"
    message = str(error["msg"])
    secret = "password" in field or "api_key" in field
    if message.startswith("Value error, ") or secret:  # neurank's own message shows the value
        return redact(f"{where}: {message.removeprefix('Value error, ')}")
    return redact(f"{where}={error['input']!r}: {message}")
