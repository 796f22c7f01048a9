"""The part of an OpenAI chat-completion request that ragserve acts on. No I/O here.

Everything else in the body (tools, response_format, logprobs, n, sampling and vLLM's
extras) is forwarded to the engine untouched, and the engine validates it: one place for
each rule. ``extra="allow"`` keeps those fields; the schema still documents ours.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.rag.options import RagOptions
from gateway.wire import integral

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    """One part of a message's content; text parts are what RAG reads and extends."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str = Field(min_length=1)
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Role
    content: str | list[ContentPart] | None = None

    @model_validator(mode="after")
    def _content_required(self) -> ChatMessage:
        if self.content is None and self.role in ("system", "developer", "user"):
            raise ValueError(f"a '{self.role}' message needs content")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool = False


class ProxiedRequest(BaseModel):
    """What every proxied endpoint reads: the model, streaming, the limits, RAG."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    rag: RagOptions | None = None
    # The tenant's salt is derived from the API key; a client's own salt is kept inside it.
    cache_salt: str | None = Field(default=None, min_length=1)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(ProxiedRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    _integers = field_validator("max_tokens", "max_completion_tokens", mode="before")(integral)

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
