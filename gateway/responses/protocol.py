"""The part of an OpenAI Responses request that ragserve acts on. No I/O here."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gateway.chat.protocol import ProxiedRequest
from gateway.wire import integral


class ResponsesRequest(ProxiedRequest):
    # A string or a list of items (messages, tool outputs, ...): the engine validates them.
    input: str | list[dict[str, Any]] = Field(...)
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    max_output_tokens: int | None = Field(default=None, ge=1)

    _integers = field_validator("max_output_tokens", mode="before")(integral)
