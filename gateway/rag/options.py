"""ragserve's per-request retrieval controls: the ``rag`` field of any proxied request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.wire import integral


class RagOptions(BaseModel):
    """``extra_body={"rag": {...}}`` in the SDK; never forwarded to the engine."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = None
    collection: str | None = Field(default=None, min_length=1, max_length=255)
    top_k: int | None = Field(default=None, ge=1, le=50)
    filter: dict[str, Any] | None = None
    mode: Literal["dense", "sparse", "hybrid"] | None = None
    min_score: float | None = None
    # "strip": invalid [n] markers (no such passage) are removed from the text as it streams.
    citations: Literal["keep", "strip"] | None = None

    _top_k = field_validator("top_k", mode="before")(integral)
