"""Every setting of ragserve, in one place (env prefix ``RAGSERVE_``, ``.env`` read too).

Each package takes plain arguments; only the composition roots (the app factory and the
CLI) read this object.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.auth import ApiKey


class ModelAlias(BaseModel):
    """A public model name mapped to an engine model, a collection and RAG defaults."""

    engine_model: str | None = None  # None: the engine's default model
    collection: str | None = None  # None: RAG off for this alias
    top_k: int | None = None
    mode: Literal["dense", "sparse", "hybrid"] | None = None
    min_score: float | None = None


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/ragserve`` (``~/.local/share/ragserve``): one place per user.

    Not the working folder (the CLI must find the store from anywhere) and not the code's
    folder (an installed package's is read-only, and a container's is not the user's).
    """
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return root / "ragserve"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGSERVE_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    # --- Where ragserve keeps its files (the store, the prepared model, logs); absolute, so
    # `make serve` and every CLI command agree from any working folder.
    data_dir: Path = Field(default_factory=default_data_dir)

    # --- HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Serve a non-loopback address with no API keys anyway (refused otherwise).
    allow_unauthenticated: bool = False

    # --- LLM engine
    # Comma-separated vLLM base URLs (".../v1" optional). Empty: ragserve starts a local engine.
    engine_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    engine_api_key: str | None = None
    engine_model_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "models" / "SmolLM2-135M-Instruct"
    )
    served_model_name: str = "smollm2-135m-instruct"
    engine_host: str = "127.0.0.1"
    engine_port: int = 8100
    engine_dtype: str = "float32"  # bf16 gives garbage on AVX2-only CPUs (measured)
    engine_max_model_len: int = 2048
    engine_kv_cache_bytes: int = 1 << 30
    engine_start_timeout_s: float = 300.0
    engine_extra_args: str = ""  # appended verbatim to vLLM's command line
    engine_connect_timeout_s: float = 5.0
    engine_first_token_timeout_s: float = 120.0
    engine_token_gap_timeout_s: float = 60.0
    # A whole (non-streamed) answer: no token shows progress, so one bound for all of it.
    engine_response_timeout_s: float = 600.0
    engine_failure_threshold: int = 3  # consecutive failures that open a replica's breaker
    engine_cooldown_s: float = 10.0  # before a half-open trial request
    engine_health_interval_s: float = 5.0  # active /health probes of every replica (0: off)

    # --- Retrieval
    store_backend: Literal["edge", "local", "server"] = "edge"
    qdrant_path: Path = Field(default_factory=lambda data: data["data_dir"] / "qdrant")
    qdrant_url: str | None = None  # set: the Qdrant server backend
    qdrant_api_key: str | None = None
    embedding_model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    embed_batch_window_ms: float = 3.0
    embed_max_batch: int = 64
    # torch, or the same weights exported to ONNX Runtime (onnx: same vectors, faster;
    # onnx-int8: quantised, see docs/EVALUATION.md); exports are cached in embedding_cache_dir
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = "onnx"
    embedding_cache_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "models" / "embeddings"
    )
    # keyword encoder of new collections: a Snowball language, or "none" (existing
    # collections keep the encoder they were built with)
    sparse_stemmer: str = "english"
    # hybrid fusion: rrf (weighted by hybrid_sparse_weight, constant rrf_k) or dbsf
    fusion: Literal["rrf", "dbsf"] = "dbsf"
    rrf_k: int = 5
    hybrid_sparse_weight: float = 1.0
    # optional reranking of the fused candidates by a /rerank endpoint (vLLM, Cohere, Jina)
    rerank_url: str | None = None  # the full endpoint URL, e.g. http://host:8000/v1/rerank
    rerank_model: str | None = None
    rerank_api_key: str | None = None
    rerank_candidates: int = 20
    rerank_timeout_s: float = 1.0
    collection: str = "docs"
    top_k: int = 5
    search_mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    min_score: float | None = None
    # What a chat does when the vector store fails: "error" (503) or "degrade" (answer
    # without context, flagged in the response).
    on_store_error: Literal["error", "degrade"] = "degrade"
    # Retrieved passages at least this similar (Jaccard over 3-word shingles) are sent once,
    # listing every document they came from; 1.0: only the same text (whitespace aside).
    dedupe_similarity: float = Field(default=1.0, gt=0.0, le=1.0)
    model_aliases: dict[str, ModelAlias] = Field(
        default_factory=lambda: {"docs": ModelAlias(collection="docs")}
    )

    # --- Access and limits
    # JSON list of {"name", "sha256", "collections", "filter", "max_concurrent_streams",
    # "requests_per_minute"}; `ragserve keys hash SECRET` prints a sha256. Empty: no auth.
    api_keys: list[ApiKey] = Field(default_factory=list)
    api_keys_file: Path | None = None  # the same list, in a JSON file
    api_key: str | None = None  # what the CLI sends to a running gateway
    max_concurrent_requests: int = 256  # chats in flight, all keys together
    queue_size: int = 512  # chats waiting for a slot before 429
    queue_timeout_s: float = 10.0  # longest wait for a slot before 429
    # Share the limits above across gateway replicas (redis://host:6379/0). Unset: in-process.
    redis_url: str | None = None
    redis_prefix: str = "ragserve"  # key prefix (a hash tag, so Redis Cluster works too)
    admission_lease_s: float = 30.0  # a dead replica's slots free up after this long
    # Deterministic answers (temperature 0 or a seed), kept per tenant, body and passages
    answer_cache: bool = True
    answer_cache_ttl_s: float = Field(default=3600.0, gt=0)
    answer_cache_max_mb: int = Field(default=256, ge=1)  # in memory; Redis bounds its own
    max_json_bytes: int = 4 * 1024 * 1024  # request body limit (413)
    max_messages: int = 512  # messages per chat (400)
    max_input_tokens: int | None = None  # the conversation's tokens, before retrieval (400)
    drain_timeout_s: float = 30.0  # on SIGTERM: how long in-flight streams may run on
    # SSE comments this often while a stream waits (retrieval, prefill): idle proxies keep it
    stream_keepalive_s: float = Field(default=15.0, gt=0)

    # --- Tracing: OpenTelemetry spans per request and stage, over OTLP/HTTP
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318 (unset: no tracing)
    otel_service_name: str = "ragserve"

    # --- Ingest
    max_upload_bytes: int = 50 * 1024 * 1024
    samples_on_first_start: bool = True

    @field_validator("engine_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "data_dir", "qdrant_path", "engine_model_dir", "embedding_cache_dir", mode="after"
    )
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # A relative value is the caller's folder's, resolved once here: every later use,
        # and every message naming the path, is the same wherever the process goes.
        return Path(os.path.abspath(value.expanduser()))

    @model_validator(mode="after")
    def _server_when_url(self) -> Settings:
        if self.qdrant_url and self.store_backend != "server":
            self.store_backend = "server"
        return self

    @property
    def local_engine(self) -> bool:
        return not self.engine_urls


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
