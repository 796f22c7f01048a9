"""Reading an SSE body in tests: its data payloads, JSON decoded ("[DONE]" as is)."""

from __future__ import annotations

import json
from typing import Any


def sse_data(text: str) -> list[Any]:
    out: list[Any] = []
    for event in text.split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
