"""One Settings object, read from `NEURANK_*` environment variables; CLI flags override its fields."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("neurank"))


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
    rerank_max_length: int = 512
    rerank_first_stage_weight: float | None = Field(
        default=None, ge=0.0, lt=1.0,
        description="share of the first-stage score in a reranked hit's score (0: the cross-encoder alone); "
                    "None: the model's calibration (its rerank.json), else 0")
    rerank_normalization: str = Field(default="min_max", description="how both rerank scores are normalized")
    runtime: str = Field(default="onnx", description="torch or onnx")
    int8: bool = True
    max_length: int = 256
    batch_tokens: int = 4096

    bm25_k1: float = 0.9
    bm25_b: float = 0.4

    opensearch_user: str | None = None
    opensearch_password: SecretStr | None = None
    opensearch_ca_certs: Path | None = None
    opensearch_verify_certs: bool = True
    opensearch_timeout_s: float = 30.0
    opensearch_neural_plugin: bool | None = Field(
        default=None, description="the cluster has neural-search (hybrid, neural_sparse); None: ask it once"
    )

    broker_url: str = "redis://127.0.0.1:6379/0"

    def store_url(self) -> str:
        """The store to use: the configured one, else a local store under `home`."""
        return self.store or f"local:{self.home / 'store'}"
