"""What the request schemas share: strict types, read the way JSON Schema reads them.

Requests are validated strictly: a boolean or a string where the schema says number is a
400 (as OpenAI answers), never coerced ("false" to a 0.0 threshold, "16" to 16 tokens).
JSON Schema counts ``5.0`` as an integer, so integer fields take ``integral`` as a
before-validator (a field validator, not an annotated type: the published schema stays).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

STRICT = ConfigDict(strict=True)


def integral(value: Any) -> Any:
    """``5.0`` as ``5``; anything else as it came, for the strict check to judge."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
