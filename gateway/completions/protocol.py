"""The part of an OpenAI (legacy) completion request that ragserve acts on. No I/O here."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gateway.chat.protocol import ProxiedRequest
from gateway.wire import integral


class CompletionRequest(ProxiedRequest):
    # A string, strings, token ids or lists of them: the engine validates the shapes; RAG
    # needs a single string.
    prompt: Any = Field(...)
    max_tokens: int | None = Field(default=None, ge=1)

    _integers = field_validator("max_tokens", mode="before")(integral)
